"""Database engine and the one-transaction-per-request session."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, event, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine

log = logging.getLogger("dari.db")
POOL_SIZE = 10
MAX_OVERFLOW = 20


# Unbounded: an evicted engine would be garbage-collected with its connections open.
@cache
def engine_for(url: str) -> Engine:
    """One engine per URL per process; SQLite gets WAL, foreign keys and serialised writers."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW
        )
    ensure_sqlite_directory(url)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20, max_overflow=40
    )
    _configure_sqlite(engine)
    return engine


def ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite file (var/ on a fresh clone); no-op for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front. A deferred transaction that
        # reads and then writes (audit hash chain, booking) can otherwise fail with
        # "database is locked" under concurrency instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def request_concurrency(engine: Engine) -> int:
    """How many requests may use the database at once (see middleware.RequestGate)."""
    if engine.dialect.name == "sqlite":
        # SQLite serialises every transaction anyway (BEGIN IMMEDIATE); a few in flight
        # keep a slow upload from stalling everyone while the lock queue stays short.
        return 4
    # Fewer than the pool's connections and the 40 worker threads, leaving a margin
    # for background tasks.
    return max(1, min(POOL_SIZE + MAX_OVERFLOW, 40) - 5)


def is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"


def database_answers(engine: Engine) -> bool:
    """True when the database runs a trivial query (for /healthz)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as error:  # unreachable, refusing, or out of connections
        # The class only: the message may carry the connection's host and user.
        log.warning("database does not answer: %s", type(error).__name__)
        return False


def get_session(request: Request) -> Iterator[Session]:
    """Commit when the handler succeeds, roll back when it raises."""
    engine: Engine = request.app.state.engine
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            # Detach first: a rollback would expire the loaded objects, and the error
            # page still reads the current user (name, role) after the session is gone.
            session.expunge_all()
            session.rollback()
            raise


# scope="function": commit before the response is sent, so a 200 means it is stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
