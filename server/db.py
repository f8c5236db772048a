"""Database engine and the one-transaction-per-request session."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection, Iterator
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from sqlalchemy import Engine, PrimaryKeyConstraint, UniqueConstraint, event, text
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

log = logging.getLogger("dari.db")
POOL_SIZE = 10
MAX_OVERFLOW = 20
# An execution option: this transaction only reads (see `reader_engine`).
READ_ONLY = "dari_read_only"
# Seconds after which the reader engine replaces a pooled PostgreSQL connection.
READER_RECYCLE_SECONDS = 300


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
        # "database is locked" under concurrency instead of waiting its turn. A
        # transaction marked READ_ONLY never writes, so it needs no lock (WAL readers
        # run beside the writer).
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


@cache
def _postgresql_reader(url: str) -> Engine:
    return create_engine(
        url,
        pool_pre_ping=False,
        pool_recycle=READER_RECYCLE_SECONDS,
        pool_size=5,
        max_overflow=10,
        isolation_level="AUTOCOMMIT",
    )


def reader_engine(engine: Engine) -> Engine:
    """An engine for short read-only transactions on a hot path (signaling's connects).

    SQLite: the same pool, but a deferred BEGIN (no write lock). PostgreSQL: a small
    pool of its own without the pre-ping round trip per checkout, in autocommit (no
    BEGIN and ROLLBACK round trips around a read; under READ COMMITTED each statement
    reads its own snapshot either way); connections are recycled after
    READER_RECYCLE_SECONDS, and the caller retries once when one turns out to be dead
    (`is_disconnect`). Work run on it must not write. Like `engine_for`,
    one per URL per process, disposed with the main engine when the app stops."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{READ_ONLY: True})
    if engine.dialect.name == "postgresql":
        return _postgresql_reader(engine.url.render_as_string(hide_password=False))
    return engine


def read_threads(engine: Engine) -> int:
    """Threads for `reader_engine`'s reads: one on SQLite (a read is CPU, and more
    threads only contend for the interpreter lock), two on PostgreSQL (a read also
    waits on the network; when a connect's reads still ran there, 5,000 connects
    measured 1.36-1.39 ms of CPU each with two, 1.47 with four, and one thread was
    slower still, waiting). On PostgreSQL a connect's reads now run on the event loop,
    over as many pooled connections (server.calls.connect_reads)."""
    return 1 if engine.dialect.name == "sqlite" else 2


def is_disconnect(error: BaseException) -> bool:
    """Whether a database error means the pooled connection was dead (safe to retry a read)."""
    return isinstance(error, DBAPIError) and bool(error.connection_invalidated)


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


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the unique index or constraint `error` violated (None if not a unique one)."""
    orig = error.orig
    if isinstance(orig, psycopg.errors.UniqueViolation):
        return orig.diag.constraint_name
    if not isinstance(orig, sqlite3.IntegrityError):
        return None
    # SQLite names the columns, not the index: "UNIQUE constraint failed: t.a, t.b"
    # (or "... failed: index 'name'" for an index on expressions).
    prefix = "UNIQUE constraint failed: "
    message = str(orig)
    if not message.startswith(prefix):
        return None
    detail = message.removeprefix(prefix)
    if detail.startswith("index '") and detail.endswith("'"):
        return detail[len("index '") : -1]
    tables, columns = set(), []
    for qualified in detail.split(", "):
        table, _, column = qualified.rpartition(".")
        tables.add(table)
        columns.append(column)
    if len(tables) != 1:
        return None
    try:
        return unique_name(tables.pop(), columns)
    except KeyError:
        return None


def unique_name(table_name: str, columns: Collection[str]) -> str:
    """The name of the models' unique index or constraint over exactly these columns.

    An unnamed constraint gets the name PostgreSQL gives it (`<table>_<columns>_key`,
    `<table>_pkey`), so both databases answer alike. KeyError if there is none.
    """
    table = SQLModel.metadata.tables[table_name]
    wanted = set(columns)
    for index in table.indexes:
        if index.unique and index.name and {c.name for c in index.columns} == wanted:
            return str(index.name)
    for constraint in table.constraints:
        if not isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint):
            continue
        names = [c.name for c in constraint.columns]
        if set(names) != wanted:
            continue
        if isinstance(constraint.name, str) and constraint.name:
            return str(constraint.name)
        if isinstance(constraint, PrimaryKeyConstraint):
            return f"{table.name}_pkey"
        return f"{table.name}_{'_'.join(names)}_key"
    raise KeyError(f"no unique index on {table_name}({', '.join(columns)})")


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
