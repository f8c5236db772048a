"""Durability: kill -9 the server in the middle of a burst; every acknowledged update survives."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx2
import pytest
from sqlmodel import Session
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin

from server.accounts.models import User
from server.notes.ot import Client, TextOperation
from tests.conftest import start_server, stop_server
from tests.factories import TEST_PASSWORD
from tests.notes.factories import consult_with_pair

pytestmark = pytest.mark.slow


def session_cookie(base: str, user: User) -> str:
    with httpx2.Client(base_url=base) as http:
        csrf = http.get("/api/auth/csrf").json()["csrf_token"]
        response = http.post(
            "/api/auth/login",
            json={"email": user.email, "password": TEST_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status_code == 200, response.text
        return f"dari_session={http.cookies['dari_session']}"


def editor(base: str, public_id: str, cookie: str, name: str, acked: list[str]) -> None:
    """Type unique tokens one at a time; a token counts once its update is acknowledged."""
    url = base.replace("http", "ws") + f"/notes/ws/{public_id}"
    client = Client(name)
    try:
        with connect(url, origin=Origin(base), additional_headers={"Cookie": cookie}) as ws:
            ws.send(json.dumps({"type": "join", "client": name, "rev": None}))
            for n in range(10_000):
                while True:  # until ready, then until our last token is acknowledged
                    message = json.loads(ws.recv(timeout=10))
                    if message["type"] == "snapshot":
                        client.doc, client.revision = message["text"], message["rev"]
                    elif message["type"] == "op":
                        client.receive(message)
                    if client.state == "synchronized" and message["type"] in ("ready", "op"):
                        break
                if n > 0:
                    acked.append(f"<{name}:{n - 1}>")
                token = f"<{name}:{n}>"
                sent = client.local(TextOperation().retain(len(client.doc)).insert(token))
                assert sent is not None
                ws.send(json.dumps(sent))
    except (ConnectionClosed, OSError, TimeoutError):
        return  # the server was killed


def test_kill_9_mid_burst_loses_no_acknowledged_update(
    database_url: str, db: Session, tmp_path: Path
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    process, base = start_server(database_url, tmp_path)
    acked: list[str] = []
    try:
        cookies = {"gp": session_cookie(base, gp), "sp": session_cookie(base, specialist)}
        threads = [
            threading.Thread(
                target=editor,
                args=(base, consult.public_id, cookies[who], f"{who}{k}", acked),
                daemon=True,
            )
            for who, k in (("gp", 1), ("gp", 2), ("sp", 1))
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(acked) >= 60, "the burst did not get going"
        os.kill(process.pid, signal.SIGKILL)  # in the middle of the burst
        process.wait()
        for thread in threads:
            thread.join(timeout=15)
        survivors = list(acked)
    finally:
        if process.returncode is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
    process, base = start_server(database_url, tmp_path)
    try:
        with httpx2.Client(base_url=base, headers={"Cookie": session_cookie(base, gp)}) as http:
            state = http.get(f"/api/consults/{consult.public_id}/notes").json()
    finally:
        stop_server(process)
    missing = [token for token in survivors if token not in state["text"]]
    assert not missing, f"{len(missing)} acknowledged updates lost: {missing[:5]}"
    for token in survivors:
        assert state["text"].count(token) == 1
