"""The OT core: fixed cases, and randomised convergence with reordered, delayed delivery."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.notes.ot import Client, OTError, TextOperation, diff
from tests.notes.sim import Network


def op(*components: int | str) -> TextOperation:
    return TextOperation.from_json(list(components))


def test_apply_counts_code_points_not_utf16_units() -> None:
    doc = "a😀b한"
    assert op(1, -1, "🙂", 2).apply(doc) == "a🙂b한"
    assert op(4, "x").apply(doc) == "a😀b한x"


def test_transform_tie_puts_the_first_operations_insert_first() -> None:
    a, b = op(1, "A", 1), op(1, "B", 1)
    a2, b2 = TextOperation.transform(a, b)
    assert b2.apply(a.apply("xy")) == a2.apply(b.apply("xy")) == "xABy"


def test_transform_of_overlapping_deletes_deletes_once() -> None:
    a, b = op(1, -3), op(2, -2)
    a2, b2 = TextOperation.transform(a, b)
    assert b2.apply(a.apply("abcd")) == a2.apply(b.apply("abcd")) == "a"


def test_compose_equals_applying_in_turn() -> None:
    a, b = op("안녕", 3), op(1, -2, "요", 2)
    assert a.compose(b).apply("abc") == b.apply(a.apply("abc"))


def test_diff_finds_the_edit_around_astral_characters() -> None:
    assert diff("a😀c", "a😀😀c").apply("a😀c") == "a😀😀c"
    assert diff("hello", "help").ops == [3, "p", -2]


@pytest.mark.parametrize(
    "bad",
    [{"x": 1}, [0], [True], ["", 1], [1.5], ["\ud800"], [[1]]],
)
def test_malformed_operations_are_refused(bad: object) -> None:
    with pytest.raises(OTError):
        TextOperation.from_json(bad)


def test_operation_must_fit_the_document() -> None:
    with pytest.raises(OTError):
        op(5, "x").apply("abc")


def test_client_buffers_while_awaiting_and_sends_after_ack() -> None:
    client = Client("me", doc="ab")
    first = client.local(op(2, "c"))
    assert first is not None and client.state == "awaiting_confirm"
    assert client.local(op(3, "d")) is None and client.state == "awaiting_with_buffer"
    reply = client.receive({"rev": 1, "client": "me", "seq": first["seq"], "op": first["op"]})
    assert reply is not None and reply["op"] == [3, "d"] and reply["rev"] == 1
    assert client.state == "awaiting_confirm"


# -- randomised convergence -------------------------------------------------------------------
def _fresh_text(counter: itertools.count[int], n: int) -> str:
    # Unique characters, Hangul and astral (surrogate pairs in JS), so every insertion
    # can be found in the final text and none can be mistaken for another.
    chars = []
    for _ in range(n):
        k = next(counter)
        chars.append(chr(0xAC00 + k % 11000) if k % 3 else chr(0x1F300 + k % 700))
    return "".join(chars)


steps = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(0, 2), st.floats(0, 1), st.integers(1, 3)),
        st.tuples(st.just("delete"), st.integers(0, 2), st.floats(0, 1), st.integers(1, 3)),
        st.tuples(st.just("up"), st.integers(0, 2), st.just(0.0), st.just(0)),
        st.tuples(st.just("down"), st.integers(0, 2), st.just(0.0), st.just(0)),
        st.tuples(st.just("drop"), st.integers(0, 2), st.just(0.0), st.just(0)),
        st.tuples(st.just("rejoin"), st.integers(0, 2), st.just(0.0), st.just(0)),
        st.tuples(st.just("stale"), st.integers(0, 2), st.just(0.0), st.integers(0, 5)),
    ),
    min_size=5,
    max_size=80,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_clients=st.integers(2, 3), script=steps)
def test_random_interleavings_converge_without_losing_an_insertion(
    n_clients: int, script: list[tuple[str, int, float, int]]
) -> None:
    """≥500 interleavings: edits from 2–3 clients, delivery reordered, delayed, dropped, resent."""
    start = "note"
    counter = itertools.count()
    net = Network(n_clients, doc=start)
    inserted = set(start)
    deleted: set[str] = set()
    for action, who, where, size in script:
        i = who % n_clients
        client = net.clients[i]
        if action == "insert":
            text = _fresh_text(counter, size)
            inserted.update(text)
            at = int(where * len(client.doc))
            net.edit(i, TextOperation().retain(at).insert(text).retain(len(client.doc) - at))
        elif action == "delete" and client.doc:
            at = min(int(where * len(client.doc)), len(client.doc) - 1)
            n = min(size, len(client.doc) - at)
            deleted.update(client.doc[at : at + n])
            net.edit(i, TextOperation().retain(at).delete(n).retain(len(client.doc) - at - n))
        elif action == "up":
            net.deliver_up(i)
        elif action == "down":
            net.deliver_down(i)
        elif action == "drop":
            net.disconnect(i)
        elif action == "rejoin":
            net.reconnect(i)
        elif action == "stale":
            net.deliver_stale(size)
    net.settle()
    final = net.server.doc
    assert all(c.doc == final for c in net.clients)
    assert all(c.state == "synchronized" for c in net.clients)
    assert len(final) == len(set(final)), "an insertion was applied twice"
    assert set(final) == inserted - deleted
