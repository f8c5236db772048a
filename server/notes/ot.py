"""Operational transformation for plain text (pure: no I/O), the server's half of the protocol.

The semantics are those of ot.js (Jupiter model with a central server) and must
stay identical to web/static/notes/ot.js, which the tests check in Chromium:

- An operation is a list of components: a positive int retains that many
  characters, a string inserts itself, a negative int deletes that many.
- Positions and lengths count Unicode code points (Python's `len(str)`); the
  JS side counts code points too, never UTF-16 code units.
- `transform(a, b, a_first)` with a and b concurrent on the same document returns
  (a', b') with apply(apply(doc, a), b') == apply(apply(doc, b), a'). When both
  insert at the same place, a's insertion goes first iff `a_first`. Server and
  clients decide it the same way, `first(a's client id, b's client id)`: the lower
  client id goes left, whatever the order of arrival.
- Non-interleaving (docs/notes.md): a remote insertion exactly at a caret goes after
  the caret (`transform_caret`): the caret sticks to the character on its left, the
  writer's own previous keystroke. With the tie-break by client id this keeps every
  run typed concurrently at one place contiguous (tests/notes/test_interleaving.py).

`Client` is the client state machine (synchronized / awaiting confirm /
awaiting with buffer), used by the tests and the benchmark; notes/ot.js has the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Component = int | str


class OTError(ValueError):
    """An operation that is malformed or does not fit the document."""


class TextOperation:
    """A normalised sequence of retain / insert / delete components."""

    __slots__ = ("ops", "base_length", "target_length")

    def __init__(self) -> None:
        self.ops: list[Component] = []
        self.base_length = 0
        self.target_length = 0

    # -- building --------------------------------------------------------------------------
    def retain(self, n: int) -> TextOperation:
        if n < 0:
            raise OTError("retain needs a non-negative count")
        if n == 0:
            return self
        self.base_length += n
        self.target_length += n
        if self.ops and _is_retain(self.ops[-1]):
            self.ops[-1] = int(self.ops[-1]) + n
        else:
            self.ops.append(n)
        return self

    def insert(self, text: str) -> TextOperation:
        if not text:
            return self
        self.target_length += len(text)
        ops = self.ops
        if ops and isinstance(ops[-1], str):
            ops[-1] = ops[-1] + text
        elif ops and _is_delete(ops[-1]):
            # Inserts go before deletes at the same place: one normal form for equal ops.
            if len(ops) > 1 and isinstance(ops[-2], str):
                ops[-2] = ops[-2] + text
            else:
                ops.insert(len(ops) - 1, text)
        else:
            ops.append(text)
        return self

    def delete(self, n: int) -> TextOperation:
        if n < 0:
            n = -n
        if n == 0:
            return self
        self.base_length += n
        if self.ops and _is_delete(self.ops[-1]):
            self.ops[-1] = int(self.ops[-1]) - n
        else:
            self.ops.append(-n)
        return self

    # -- wire format -------------------------------------------------------------------------
    def to_json(self) -> list[Component]:
        return list(self.ops)

    @classmethod
    def from_json(cls, data: Any, *, max_insert: int = 1_000_000) -> TextOperation:
        """Validate untrusted input: a list of non-zero ints and non-empty strings."""
        if not isinstance(data, list):
            raise OTError("an operation is a list")
        op = cls()
        inserted = 0
        for component in data:
            if isinstance(component, bool):
                raise OTError("invalid component")
            if isinstance(component, int):
                if component > 0:
                    op.retain(component)
                elif component < 0:
                    op.delete(component)
                else:
                    raise OTError("zero-length component")
            elif isinstance(component, str):
                if not component:
                    raise OTError("empty insert")
                if any(0xD800 <= ord(ch) <= 0xDFFF for ch in component):
                    raise OTError("lone surrogate in insert")
                inserted += len(component)
                op.insert(component)
            else:
                raise OTError("invalid component")
        if inserted > max_insert:
            raise OTError("insert too large")
        return op

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextOperation) and self.ops == other.ops

    def __hash__(self) -> int:  # pragma: no cover - operations are not used as keys
        return hash(tuple(self.ops))

    def __repr__(self) -> str:
        return f"TextOperation({self.ops!r})"

    def is_noop(self) -> bool:
        return not self.ops or (len(self.ops) == 1 and _is_retain(self.ops[0]))

    # -- semantics -------------------------------------------------------------------------
    def apply(self, doc: str) -> str:
        if len(doc) != self.base_length:
            raise OTError(
                f"operation expects {self.base_length} characters, document has {len(doc)}"
            )
        parts: list[str] = []
        index = 0
        for component in self.ops:
            if isinstance(component, str):
                parts.append(component)
            elif component > 0:
                parts.append(doc[index : index + component])
                index += component
            else:
                index -= component
        return "".join(parts)

    def compose(self, other: TextOperation) -> TextOperation:
        """One operation with the effect of self followed by other."""
        if self.target_length != other.base_length:
            raise OTError("compose: lengths do not match")
        result = TextOperation()
        a, b = _Cursor(self.ops), _Cursor(other.ops)
        while not (a.done() and b.done()):
            if a.is_delete():
                result.delete(a.take_all())
                continue
            if b.is_insert():
                result.insert(b.take_all_str())
                continue
            if a.done() or b.done():
                raise OTError("compose: operations do not fit")
            n = min(a.length(), b.length())
            if a.is_retain() and b.is_retain():
                result.retain(n)
            elif a.is_insert() and b.is_delete():
                pass
            elif a.is_insert() and b.is_retain():
                result.insert(a.peek_str(n))
            elif a.is_retain() and b.is_delete():
                result.delete(n)
            a.advance(n)
            b.advance(n)
        return result

    @staticmethod
    def transform(
        a: TextOperation, b: TextOperation, a_first: bool = True
    ) -> tuple[TextOperation, TextOperation]:
        """(a', b') for concurrent a and b; on a tie a's insertion goes first iff a_first."""
        if a.base_length != b.base_length:
            raise OTError("transform: both operations must start from the same document")
        a_prime, b_prime = TextOperation(), TextOperation()
        x, y = _Cursor(a.ops), _Cursor(b.ops)
        while not (x.done() and y.done()):
            if x.is_insert() and (a_first or not y.is_insert()):
                text = x.take_all_str()
                a_prime.insert(text)
                b_prime.retain(len(text))
                continue
            if y.is_insert():
                text = y.take_all_str()
                a_prime.retain(len(text))
                b_prime.insert(text)
                continue
            if x.done() or y.done():
                raise OTError("transform: operations do not fit")
            n = min(x.length(), y.length())
            if x.is_retain() and y.is_retain():
                a_prime.retain(n)
                b_prime.retain(n)
            elif x.is_delete() and y.is_delete():
                pass
            elif x.is_delete() and y.is_retain():
                a_prime.delete(n)
            elif x.is_retain() and y.is_delete():
                b_prime.delete(n)
            x.advance(n)
            y.advance(n)
        return a_prime, b_prime


def _is_retain(component: Component) -> bool:
    return isinstance(component, int) and component > 0


def _is_delete(component: Component) -> bool:
    return isinstance(component, int) and component < 0


class _Cursor:
    """Walks an operation's components, splitting them where the other side needs."""

    __slots__ = ("ops", "index", "offset")

    def __init__(self, ops: Sequence[Component]) -> None:
        self.ops = ops
        self.index = 0
        self.offset = 0

    def done(self) -> bool:
        return self.index >= len(self.ops)

    def _current(self) -> Component | None:
        return None if self.done() else self.ops[self.index]

    def is_insert(self) -> bool:
        return isinstance(self._current(), str)

    def is_retain(self) -> bool:
        c = self._current()
        return isinstance(c, int) and c > 0

    def is_delete(self) -> bool:
        c = self._current()
        return isinstance(c, int) and c < 0

    def length(self) -> int:
        c = self._current()
        if isinstance(c, str):
            return len(c) - self.offset
        assert c is not None
        return abs(c) - self.offset

    def peek_str(self, n: int) -> str:
        c = self._current()
        assert isinstance(c, str)
        return c[self.offset : self.offset + n]

    def take_all_str(self) -> str:
        text = self.peek_str(self.length())
        self.index += 1
        self.offset = 0
        return text

    def take_all(self) -> int:
        n = self.length()
        self.index += 1
        self.offset = 0
        return n

    def advance(self, n: int) -> None:
        self.offset += n
        if self.offset >= self._full_length():
            self.index += 1
            self.offset = 0

    def _full_length(self) -> int:
        c = self._current()
        assert c is not None
        return len(c) if isinstance(c, str) else abs(c)


def first(client: str, other: str) -> bool:
    """Whose insertion goes left when two clients insert at the same place: the lower id.

    Not the order of arrival: a writer who backspaced over all of their run and types
    again sits at the end of the other's run, and must not get between that run and its
    next keystroke (tests/notes/test_interleaving.py found that case).
    """
    return client < other


def transform_against(
    op: TextOperation, client: str, history: Iterable[tuple[str, TextOperation]]
) -> TextOperation:
    """The server's step: bring a late operation past every operation it has not seen."""
    for other, concurrent in history:
        op = TextOperation.transform(op, concurrent, first(client, other))[0]
    return op


def transform_caret(op: TextOperation, index: int, *, before: bool) -> int:
    """Where a caret (code points) ends up after `op`.

    The caret is where its writer's next keystroke goes, so an insertion exactly at the
    caret is ordered against it as `transform` would order that keystroke: it goes
    before the caret iff `before`, i.e. `first(op's author, caret's writer)` (true for
    the writer's own operations). Tie-break and caret agree, so a writer's keystrokes
    stay together (docs/notes.md, "Non-interleaving").
    """
    pos, out = 0, index
    for component in op.ops:
        if pos > index:
            break
        if isinstance(component, str):
            if pos < index or before:
                out += len(component)
        elif component > 0:
            pos += component
        else:
            out -= min(index - pos, -component)
            pos -= component
    return out


def diff(old: str, new: str) -> TextOperation:
    """The operation turning old into new (common prefix and suffix kept)."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    end = 0
    while end < limit - start and old[len(old) - 1 - end] == new[len(new) - 1 - end]:
        end += 1
    op = TextOperation().retain(start)
    op.insert(new[start : len(new) - end])
    op.delete(len(old) - start - end)
    return op.retain(end)


# -- the client state machine ------------------------------------------------------------------
@dataclass
class Client:
    """A Jupiter client: at most one operation in flight, later edits composed in a buffer."""

    client_id: str
    doc: str = ""
    revision: int = 0
    seq: int = 0
    outstanding: TextOperation | None = None
    outstanding_seq: int = 0
    buffer: TextOperation | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    applied: TextOperation | None = None
    applied_client: str = ""

    @property
    def state(self) -> str:
        if self.outstanding is None:
            return "synchronized"
        return "awaiting_with_buffer" if self.buffer is not None else "awaiting_confirm"

    def local(self, op: TextOperation) -> dict[str, Any] | None:
        """Apply a local edit; returns the message to send, if one may be sent now."""
        self.doc = op.apply(self.doc)
        if op.is_noop():
            return None
        if self.outstanding is None:
            return self._send(op)
        self.buffer = op if self.buffer is None else self.buffer.compose(op)
        return None

    def _send(self, op: TextOperation) -> dict[str, Any]:
        self.seq += 1
        self.outstanding = op
        self.outstanding_seq = self.seq
        message = self.pending_message()
        assert message is not None
        self.sent.append(message)
        return message

    def pending_message(self) -> dict[str, Any] | None:
        """The in-flight operation as it must be (re)sent now, rebased on our revision."""
        if self.outstanding is None:
            return None
        return {
            "type": "op",
            "rev": self.revision,
            "seq": self.outstanding_seq,
            "op": self.outstanding.to_json(),
        }

    def receive(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Process one server update in revision order; returns a message to send, if any.

        `applied` is then the operation applied to `doc` (None for an acknowledgement),
        `applied_client` its author's client id: carets are moved with `transform_caret`.
        """
        self.applied = None
        if message.get("type") == "ack":
            # Our operation became empty (everything it deleted was deleted meanwhile):
            # acknowledged at revision `rev` without a revision of its own.
            if message.get("seq") != self.outstanding_seq or self.outstanding is None:
                return None
            if int(message["rev"]) > self.revision:
                raise OTError(f"gap: have {self.revision}, ack at {message['rev']}")
            if not self.outstanding.is_noop():
                raise OTError("acknowledged as empty, but our operation is not")
            return self._ack()
        rev = int(message["rev"])
        if rev <= self.revision:
            return None  # already seen (a duplicate after reconnect)
        if rev != self.revision + 1:
            raise OTError(f"gap: have {self.revision}, got {rev}")
        self.revision = rev
        author = str(message.get("client", ""))
        if author == self.client_id and message.get("seq") == self.outstanding_seq:
            return self._ack()
        op = TextOperation.from_json(message["op"])
        mine_first = first(self.client_id, author)
        if self.outstanding is not None:
            self.outstanding, op = TextOperation.transform(self.outstanding, op, mine_first)
            if self.buffer is not None:
                self.buffer, op = TextOperation.transform(self.buffer, op, mine_first)
        self.doc = op.apply(self.doc)
        self.applied, self.applied_client = op, author
        return None

    def _ack(self) -> dict[str, Any] | None:
        self.outstanding = None
        if self.buffer is not None:
            buffered, self.buffer = self.buffer, None
            if not buffered.is_noop():
                return self._send(buffered)
        return None
