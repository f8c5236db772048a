"""A deterministic network of OT clients and one server, for the convergence tests."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from server.notes.ot import Client, TextOperation, first, transform_against, transform_caret


class SimServer:
    """The server's rule, as server.notes.service applies it, without a database."""

    def __init__(self, doc: str = "") -> None:
        self.doc = doc
        self.history: list[dict[str, Any]] = []
        self.seen: dict[tuple[str, int], int] = {}

    def receive(self, client_id: str, message: dict[str, Any]) -> dict[str, Any] | None:
        key = (client_id, int(message["seq"]))
        if key in self.seen:
            return None  # a resend after reconnect: applied once already
        op = TextOperation.from_json(message["op"])
        late = [
            (str(h["client"]), TextOperation.from_json(h["op"]))
            for h in self.history[int(message["rev"]) :]
        ]
        op = transform_against(op, client_id, late)
        if op.is_noop():
            # Nothing to store (server.notes.service): acknowledged, no revision.
            return {"type": "ack", "rev": len(self.history), "seq": key[1]}
        self.doc = op.apply(self.doc)
        revision = len(self.history) + 1
        record = {
            "type": "op",
            "rev": revision,
            "op": op.to_json(),
            "client": client_id,
            "seq": key[1],
        }
        self.history.append(record)
        self.seen[key] = revision
        return record

    def since(self, revision: int) -> list[dict[str, Any]]:
        return self.history[revision:]


class Network:
    """Per-connection FIFO channels; delivery order across clients is chosen by the test."""

    def __init__(
        self,
        n_clients: int,
        doc: str = "",
        *,
        ids: list[str] | None = None,
        carets: list[int] | None = None,
    ) -> None:
        self.server = SimServer(doc)
        names = ids or [f"c{i}" for i in range(n_clients)]
        self.clients = [Client(client_id=names[i], doc=doc) for i in range(n_clients)]
        # Each writer's caret (code points), moved by remote updates as the panel moves it.
        self.carets = list(carets) if carets is not None else [0] * n_clients
        # What each client saw and did, for replaying through the browser's client.
        self.trace: list[list[dict[str, Any]]] = [[] for _ in range(n_clients)]
        self.up: list[list[dict[str, Any]]] = [[] for _ in range(n_clients)]
        self.down: list[list[dict[str, Any]]] = [[] for _ in range(n_clients)]
        self.connected = [True] * n_clients
        # Messages a dropped connection had already put on the wire: they may still arrive.
        self.stale: list[tuple[int, dict[str, Any]]] = []

    def edit(self, i: int, op: TextOperation, caret: int | None = None) -> None:
        message = self.clients[i].local(op)
        if caret is not None:
            self.carets[i] = caret
        self.trace[i].append(
            {"kind": "local", "op": op.to_json(), "out": message, "caret": self.carets[i]}
        )
        if message is not None and self.connected[i]:
            self.up[i].append(message)

    def _receive(self, i: int, record: dict[str, Any]) -> None:
        client = self.clients[i]
        reply = client.receive(record)
        if client.applied is not None:
            before = first(client.applied_client, client.client_id)
            self.carets[i] = transform_caret(client.applied, self.carets[i], before=before)
        self.trace[i].append(
            {
                "kind": "receive",
                "msg": record,
                "out": reply,
                "doc": client.doc,
                "caret": self.carets[i],
            }
        )
        if reply is not None:
            self.up[i].append(reply)

    def deliver_up(self, i: int) -> None:
        if self.up[i]:
            self._to_server(i, self.up[i].pop(0))

    def deliver_stale(self, index: int) -> None:
        if self.stale:
            i, message = self.stale.pop(index % len(self.stale))
            self._to_server(i, message)

    def _to_server(self, i: int, message: dict[str, Any]) -> None:
        record = self.server.receive(self.clients[i].client_id, message)
        if record is None:
            return
        if record["type"] == "ack":
            if self.connected[i]:
                self.down[i].append(record)  # to the author only
            return
        for j in range(len(self.clients)):
            if self.connected[j]:
                self.down[j].append(record)

    def deliver_down(self, i: int) -> None:
        if self.down[i]:
            self._receive(i, self.down[i].pop(0))

    def disconnect(self, i: int) -> None:
        if not self.connected[i]:
            return
        self.connected[i] = False
        self.stale.extend((i, m) for m in self.up[i])
        self.up[i] = []
        self.down[i] = []

    def reconnect(self, i: int) -> None:
        """Join with our revision, take the missed updates, then resend what is unconfirmed."""
        if self.connected[i]:
            return
        self.connected[i] = True
        client = self.clients[i]
        for record in self.server.since(client.revision):
            self._receive(i, record)
        pending = client.pending_message()
        self.trace[i].append({"kind": "pending", "out": pending})
        if pending is not None and pending not in self.up[i]:
            self.up[i].append(pending)

    def settle(self) -> None:
        for i in range(len(self.clients)):
            self.reconnect(i)
        while self.stale:
            self.deliver_stale(0)
        while any(self.up) or any(self.down):
            for i in range(len(self.clients)):
                self.deliver_up(i)
                self.deliver_down(i)


# -- writers typing runs at their carets (the non-interleaving properties) -------------------
START = "note"
Step = tuple[str, int, int]  # (action, writer, argument)


def fresh_char(k: int) -> str:
    """A character no other keystroke uses: Hangul mostly, an astral one (a surrogate
    pair in JS) every fifth keystroke, so each survivor can be traced to its writer."""
    return chr(0x1F300 + k % 700) if k % 5 == 4 else chr(0xAC00 + k % 11000)


@dataclass
class Runs:
    """The outcome of a script: the network, and each writer's keystrokes in order."""

    net: Network
    typed: list[list[str]]
    deleted: set[str]

    def survivors(self, i: int) -> str:
        return "".join(c for c in self.typed[i] if c not in self.deleted)


def type_runs(ids: list[str], starts: list[int], script: list[Step]) -> Runs:
    """Each writer types one keystroke at a time at its caret, or backspaces over its own
    last keystroke; delivery is delayed, reordered, dropped and resent as the script says."""
    n = len(ids)
    net = Network(n, doc=START, ids=ids, carets=starts)
    typed: list[list[str]] = [[] for _ in range(n)]
    deleted: set[str] = set()
    counter = 0
    for action, who, arg in script:
        i = who % n
        client, caret = net.clients[i], net.carets[i]
        doc = client.doc
        if action == "type":
            char = fresh_char(counter)
            counter += 1
            typed[i].append(char)
            net.edit(
                i, TextOperation().retain(caret).insert(char).retain(len(doc) - caret), caret + 1
            )
        elif action == "back":
            if caret > 0 and doc[caret - 1] in typed[i]:
                deleted.add(doc[caret - 1])
                op = TextOperation().retain(caret - 1).delete(1).retain(len(doc) - caret)
                net.edit(i, op, caret - 1)
        elif action == "up":
            net.deliver_up(i)
        elif action == "down":
            net.deliver_down(i)
        elif action == "drop":
            net.disconnect(i)
        elif action == "rejoin":
            net.reconnect(i)
        elif action == "stale":
            net.deliver_stale(arg)
    net.settle()
    return Runs(net, typed, deleted)


def script_from(rng: random.Random, n_steps: int) -> list[Step]:
    """A script drawn from a seeded generator (the browser test replays these)."""
    kinds = ["type"] * 6 + ["back"] * 2 + ["up"] * 4 + ["down"] * 4 + ["drop", "rejoin", "stale"]
    return [(rng.choice(kinds), rng.randrange(3), rng.randrange(6)) for _ in range(n_steps)]
