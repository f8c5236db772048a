"""The server gatekeeper's outbox reads: the same rows whether the poll binds the
connected users' ids or filters a large set in Python; the connect's catch-up read."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from server.accounts import service as accounts
from server.calls import gatekeeper
from server.calls.gatekeeper import ServerGatekeeper
from server.db import engine_for, read_threads, reader_engine
from server.notifications import service as notifications
from server.settings import Settings
from tests.conftest import TEST_SECRET
from tests.factories import make_user
from tests.signaling.factories import session_cookie


async def test_a_poll_for_many_users_reads_the_same_rows(
    db: Session, settings: Settings, database_url: str
) -> None:
    users = [make_user(db) for _ in range(3)]
    ids = [u.id or 0 for u in users]
    for user_id in [ids[0], ids[1], ids[2], ids[0]]:
        notifications.notify(db, user_id, "test.kind", {"n": user_id})
    db.commit()
    gate = ServerGatekeeper(settings, engine_for(database_url), TEST_SECRET)
    floor = min(n["id"] for n in await gate.notifications_since(ids[0], 0)) - 1
    wanted = [ids[0], ids[2]]
    _, bound = await gate.notifications_window(floor, wanted, time.time())
    padded = wanted + [10**9 + i for i in range(gatekeeper.IN_LIST_LIMIT + 1)]
    _, filtered = await gate.notifications_window(floor, padded, time.time())
    assert [(u, r["id"]) for u, r in bound] == [(u, r["id"]) for u, r in filtered]
    assert [u for u, _ in filtered] == [ids[0], ids[2], ids[0]]


async def test_authenticate_subscriber_reads_the_catch_up_with_the_session(
    db: Session, settings: Settings, database_url: str
) -> None:
    user = make_user(db)
    cookie = session_cookie(db, user)
    first = notifications.notify(db, user.id or 0, "test.kind", {"a": 1})
    notifications.notify(db, user.id or 0, "test.kind", {"a": 2})
    db.commit()
    gate = ServerGatekeeper(settings, engine_for(database_url), TEST_SECRET)
    identity, rows = await gate.authenticate_subscriber(cookie, None, first.id or 0)
    assert identity is not None and identity.user_id == user.id
    assert rows is not None and [r["payload"] for r in rows] == [{"a": 2}]
    assert rows == await gate.notifications_since(user.id or 0, first.id or 0)
    assert await gate.authenticate_subscriber("not-a-session", None, 0) == (None, None)


def test_a_stopped_app_leaves_no_reader_connection_open(
    db: Session, settings: Settings, database_url: str
) -> None:
    """Signaling's reads have a pool of their own on PostgreSQL: the app's shutdown
    closes it with the main one (it stayed open until the process ended)."""
    from fastapi.testclient import TestClient

    from server.app import create_app

    user = make_user(db)
    cookie = session_cookie(db, user)
    app = create_app(settings)
    pool = reader_engine(app.state.engine).pool
    assert isinstance(pool, QueuePool)
    with TestClient(app, base_url="http://testserver") as client:
        client.cookies.set("dari_session", cookie.split("=", 1)[-1])
        with client.websocket_connect("/ws/user", headers={"origin": "http://testserver"}) as ws:
            ws.send_json({"type": "subscribe", "after_id": 0})
            ws.send_json({"type": "ping", "ts": 1})
            while ws.receive_json()["type"] != "pong":
                pass
        assert pool.checkedin() >= 1  # the connect read on it
    assert pool.checkedin() == 0


async def test_connect_reads_run_on_the_gates_own_few_threads(
    db: Session, settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many connects at once share the gate's read threads (one on SQLite), not
    asyncio's default pool: fewer threads contending with the event loop."""
    users = [make_user(db) for _ in range(12)]
    cookies = [session_cookie(db, user) for user in users]
    db.commit()
    gate = ServerGatekeeper(settings, engine_for(database_url), TEST_SECRET)
    threads: set[threading.Thread] = set()
    peek = accounts.peek_session

    def spying(*args: Any) -> Any:
        threads.add(threading.current_thread())
        return peek(*args)

    monkeypatch.setattr(accounts, "peek_session", spying)
    try:
        answers = await asyncio.gather(
            *(gate.authenticate_subscriber(cookie, None, 0) for cookie in cookies)
        )
    finally:
        gate.close()
    assert [identity.user_id for identity, _ in answers if identity] == [u.id for u in users]
    assert threads and all(thread.name.startswith("dari-gate-read") for thread in threads)
    assert len(threads) <= read_threads(gate.engine)
    # Closed (the app stopped): its threads end; started again, it reads on new ones.
    for thread in threads:
        thread.join(timeout=5)
    assert not any(thread.is_alive() for thread in threads)
    identity, _ = await gate.authenticate_subscriber(cookies[0], None, 0)
    assert identity is not None and identity.user_id == users[0].id
    gate.close()


def test_the_postgresql_reader_reads_in_autocommit(database_url: str) -> None:
    """No BEGIN and ROLLBACK round trips around a connect's two reads on PostgreSQL;
    SQLite keeps its deferred (lock-free) transaction."""
    reader = reader_engine(engine_for(database_url))
    with reader.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
        driver = connection.connection.dbapi_connection
        if reader.dialect.name == "postgresql":
            assert driver.autocommit is True  # type: ignore[union-attr]
        else:
            assert connection.in_transaction()
