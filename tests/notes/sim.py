"""A deterministic network of OT clients and one server, for the convergence tests."""

from __future__ import annotations

from typing import Any

from server.notes.ot import Client, TextOperation, transform_against


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
        late = [TextOperation.from_json(h["op"]) for h in self.history[int(message["rev"]) :]]
        op = transform_against(op, late)
        self.doc = op.apply(self.doc)
        revision = len(self.history) + 1
        record = {"rev": revision, "op": op.to_json(), "client": client_id, "seq": key[1]}
        self.history.append(record)
        self.seen[key] = revision
        return record

    def since(self, revision: int) -> list[dict[str, Any]]:
        return self.history[revision:]


class Network:
    """Per-connection FIFO channels; delivery order across clients is chosen by the test."""

    def __init__(self, n_clients: int, doc: str = "") -> None:
        self.server = SimServer(doc)
        self.clients = [Client(client_id=f"c{i}", doc=doc) for i in range(n_clients)]
        self.up: list[list[dict[str, Any]]] = [[] for _ in range(n_clients)]
        self.down: list[list[dict[str, Any]]] = [[] for _ in range(n_clients)]
        self.connected = [True] * n_clients
        # Messages a dropped connection had already put on the wire: they may still arrive.
        self.stale: list[tuple[int, dict[str, Any]]] = []

    def edit(self, i: int, op: TextOperation) -> None:
        message = self.clients[i].local(op)
        if message is not None and self.connected[i]:
            self.up[i].append(message)

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
        for j in range(len(self.clients)):
            if self.connected[j]:
                self.down[j].append(record)

    def deliver_down(self, i: int) -> None:
        if self.down[i]:
            reply = self.clients[i].receive(self.down[i].pop(0))
            if reply is not None:
                self.up[i].append(reply)

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
            reply = client.receive(record)
            if reply is not None:
                self.up[i].append(reply)
        pending = client.pending_message()
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
