"""The server gatekeeper's outbox reads: the same rows whether the poll binds the
connected users' ids or filters a large set in Python; the connect's reads (a read
thread on SQLite, the event loop on PostgreSQL), which follow peek_session's rule."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, select

from server.accounts import service as accounts
from server.accounts.models import LoginSession
from server.accounts.security import token_hash
from server.calls import connect_reads, gatekeeper
from server.calls.gatekeeper import ServerGatekeeper
from server.clock import utcnow
from server.db import engine_for, read_threads, reader_engine
from server.notifications import service as notifications
from server.settings import Settings
from tests.conftest import TEST_SECRET, observer_engine
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
    """Many connects at once: on SQLite they share the gate's one read thread, not
    asyncio's default pool (fewer threads contending with the event loop); on PostgreSQL
    they run on the event loop itself, over at most read_threads pooled connections."""
    users = [make_user(db) for _ in range(12)]
    cookies = [session_cookie(db, user) for user in users]
    db.commit()
    gate = ServerGatekeeper(settings, engine_for(database_url), TEST_SECRET)
    assert await _no_backends_soon(database_url)  # an earlier app's pool is gone
    threads: set[threading.Thread] = set()
    peek = accounts.peek_from_row

    def spying(*args: Any) -> Any:
        threads.add(threading.current_thread())
        return peek(*args)

    monkeypatch.setattr(accounts, "peek_from_row", spying)
    try:
        answers = await asyncio.gather(
            *(gate.authenticate_subscriber(cookie, None, 0) for cookie in cookies)
        )
        backends = _connect_read_backends(database_url)
    finally:
        await gate.close()
    assert [identity.user_id for identity, _ in answers if identity] == [u.id for u in users]
    if database_url.startswith("sqlite"):
        assert threads and all(thread.name.startswith("dari-gate-read") for thread in threads)
        assert len(threads) <= read_threads(gate.engine)
        assert backends == 0
    else:
        assert threads == {threading.main_thread()}
        assert 1 <= backends <= read_threads(gate.engine)
        assert await _no_backends_soon(database_url)  # closed with the gate
    # Closed (the app stopped): its threads end; started again, it reads on new ones.
    for thread in threads - {threading.main_thread()}:
        thread.join(timeout=5)
        assert not thread.is_alive()
    identity, _ = await gate.authenticate_subscriber(cookies[0], None, 0)
    assert identity is not None and identity.user_id == users[0].id
    await gate.close()


# This process's connect-read connections (the live server's, on the same database,
# name themselves with its own process id).
OURS = f"{connect_reads.APPLICATION_NAME} {os.getpid()}"


async def _no_backends_soon(database_url: str) -> bool:
    """Whether this process's connect-read backends are all gone within 5 s (a server
    process ends shortly after its client closed the connection)."""
    deadline = time.monotonic() + 5
    while _connect_read_backends(database_url) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return _connect_read_backends(database_url) == 0


def _connect_read_backends(database_url: str) -> int:
    """PostgreSQL's server processes serving this process's connect reads (0 on SQLite)."""
    if database_url.startswith("sqlite"):
        return 0
    with observer_engine(database_url).connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": OURS},
            ).scalar_one()
        )


async def test_connect_reads_refuse_exactly_what_peek_session_refuses(
    db: Session, settings: Settings, database_url: str
) -> None:
    """The socket connects (room and user channel) answer as peek_session does, on
    whichever path the database takes: an ended, pending, idle- or absolutely-expired
    session, one of a deactivated user, or an unknown cookie opens nothing."""
    user, other = make_user(db), make_user(db)
    note = notifications.notify(db, user.id or 0, "test.kind", {"a": 1})
    db.commit()
    now = utcnow()
    changes: dict[str, dict[str, Any]] = {
        "live": {},
        "ended": {"ended_at": now},
        "pending": {"pending": "otp"},
        "idle": {"last_seen_at": now - timedelta(minutes=settings.session_idle_minutes + 1)},
        "absolute": {"created_at": now - timedelta(hours=settings.session_absolute_hours + 1)},
    }
    cookies = {}
    for name, values in changes.items():
        cookies[name] = session_cookie(db, user)
        record = db.exec(
            select(LoginSession).where(LoginSession.token_hash == token_hash(cookies[name]))
        ).one()
        for field, value in values.items():
            setattr(record, field, value)
        db.add(record)
    cookies["inactive user"] = session_cookie(db, other)
    other.active = False
    db.add(other)
    db.commit()
    cookies["unknown"] = "no-such-session"
    gate = ServerGatekeeper(settings, engine_for(database_url), TEST_SECRET)
    opened = []
    try:
        for name, cookie in cookies.items():
            expected = accounts.peek_session(db.connection(), settings, cookie)
            room_identity = await gate.authenticate(cookie, None)
            user_identity, rows = await gate.authenticate_subscriber(cookie, None, 0)
            assert (expected is None) == (room_identity is None) == (user_identity is None), name
            if user_identity is not None:
                opened.append(name)
                assert user_identity.user_id == user.id and user_identity == room_identity
                assert rows is not None and [r["id"] for r in rows] == [note.id]
            else:
                assert rows is None
    finally:
        await gate.close()
    assert opened == ["live"]


async def test_a_connect_read_survives_its_connection_being_dropped(
    db: Session, settings: Settings, database_url: str
) -> None:
    """A pooled connection the server dropped (a restart, an idle timeout) costs the
    next connect nothing: the read runs again, once, on a fresh connection."""
    user = make_user(db)
    cookie = session_cookie(db, user)
    db.commit()
    gate = ServerGatekeeper(settings, engine_for(database_url), TEST_SECRET)
    try:
        identity, _ = await gate.authenticate_subscriber(cookie, None, 0)
        assert identity is not None
        if not database_url.startswith("sqlite"):
            with observer_engine(database_url).connect() as connection:
                dropped = connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": OURS},
                ).scalar_one()
            assert dropped >= 1
        for _ in range(3):  # each pooled connection in turn
            identity, rows = await gate.authenticate_subscriber(cookie, None, 0)
            assert identity is not None and identity.user_id == user.id and rows == []
    finally:
        await gate.close()


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
