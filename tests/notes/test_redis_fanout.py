"""Two server processes, one note: updates cross between them through Redis pub/sub."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from server.notes.ot import Client, TextOperation
from tests.conftest import start_server, stop_server
from tests.notes.factories import consult_with_pair
from tests.notes.test_durability import session_cookie

pytestmark = [pytest.mark.redis, pytest.mark.slow]
REDIS = "redis://127.0.0.1:6379/0"


class Remote:
    """An editor on its own socket, pumped by a background thread."""

    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws, self.client, self.lock = ws, Client(name), threading.Lock()
        self.ready = threading.Event()
        ws.send(json.dumps({"type": "join", "client": name, "rev": None}))
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _pump(self) -> None:
        try:
            for raw in self.ws:
                message: dict[str, Any] = json.loads(raw)
                with self.lock:
                    if message["type"] == "snapshot":
                        self.client.doc, self.client.revision = message["text"], message["rev"]
                    elif message["type"] == "ready":
                        self.ready.set()
                    elif message["type"] == "op":
                        reply = self.client.receive(message)
                        if reply is not None:
                            self.ws.send(json.dumps(reply))
        except ConnectionClosed:  # the test is over and closed the socket
            return

    def type_at_end(self, text: str) -> None:
        with self.lock:
            doc = self.client.doc
            message = self.client.local(TextOperation().retain(len(doc)).insert(text))
            if message is not None:
                self.ws.send(json.dumps(message))


def test_editors_on_two_processes_converge_through_redis(
    database_url: str, db: Session, tmp_path: Path
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    env = {"DARI_REDIS_URL": REDIS}
    first, base1 = start_server(database_url, tmp_path, extra_env=env)
    second, base2 = start_server(database_url, tmp_path, extra_env=env)
    try:
        path = f"/notes/ws/{consult.public_id}"
        with (
            connect(
                base1.replace("http", "ws") + path,
                origin=Origin(base1),
                additional_headers={"Cookie": session_cookie(base1, gp)},
            ) as ws1,
            connect(
                base2.replace("http", "ws") + path,
                origin=Origin(base2),
                additional_headers={"Cookie": session_cookie(base2, specialist)},
            ) as ws2,
        ):
            a, b = Remote(ws1, "proc1"), Remote(ws2, "proc2")
            for i in range(20):
                a.type_at_end(f"[a{i}]")
                b.type_at_end(f"(b{i})")
                time.sleep(0.01)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with a.lock, b.lock:
                    done = (
                        a.client.state == b.client.state == "synchronized"
                        and a.client.revision == b.client.revision
                    )
                if done:
                    break
                time.sleep(0.05)
            assert a.client.doc == b.client.doc
            for i in range(20):
                assert a.client.doc.count(f"[a{i}]") == 1 and a.client.doc.count(f"(b{i})") == 1
    finally:
        stop_server(first)
        stop_server(second)
