"""A socket connect's reads: the login session behind the cookie and, for the user
channel, the notifications the page missed (its catch-up).

Every page opens /ws/user, so these reads are the hot path of a connect. On SQLite they
run in the gatekeeper's read thread on a bare SQLAlchemy connection (`catch_up`). On
PostgreSQL they run on the event loop itself (`PostgresConnectReads`): psycopg's own
asyncio driver, a small pool of its own (psycopg_pool), and the session, its user and the
catch-up page joined into one prepared statement. Through a thread and SQLAlchemy the
same read cost ~330 µs of the process's CPU (thread hand-offs, the interpreter lock, two
statements); on the loop, ~75 µs (docs/benchmarks.md, "Idle authenticated connections").
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import namedtuple
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Connection, Engine, bindparam, true
from sqlalchemy import select as sa_select

from server.accounts import service as accounts
from server.accounts.models import LoginSession
from server.accounts.security import token_hash
from server.db import READER_RECYCLE_SECONDS
from server.notifications.models import Notification
from server.settings import Settings
from signaling.users import CATCH_UP_PAGE

# The pools' connections name themselves so, followed by the process id.
APPLICATION_NAME = "dari-connect-reads"
_OUTBOX = Notification.__table__  # type: ignore[attr-defined]
_LS = LoginSession.__table__  # type: ignore[attr-defined]


def _catch_up_page(user_id: Any) -> Any:
    """The user's notifications above `after_id`, oldest first, one page."""
    return (
        sa_select(
            _OUTBOX.c.id,
            _OUTBOX.c.kind,
            _OUTBOX.c.payload,
            _OUTBOX.c.created_at,
            _OUTBOX.c.read_at,
        )
        .where(_OUTBOX.c.user_id == user_id, _OUTBOX.c.id > bindparam("after_id"))
        .order_by(_OUTBOX.c.id)
        .limit(CATCH_UP_PAGE)
    )


CATCH_UP = _catch_up_page(bindparam("user_id"))


def _frame(id_: int, kind: str, payload: str, created_at: Any, read_at: Any) -> dict[str, Any]:
    """A notification as the user channel sends it (notifications.as_dict, from a row)."""
    return {
        "id": id_,
        "kind": kind,
        "payload": json.loads(payload),
        "created_at": created_at.isoformat(),
        "read": read_at is not None,
    }


def catch_up(connection: Connection, user_id: int, after_id: int) -> list[dict[str, Any]]:
    """notifications.since + as_dict as one Core query (a connect's hot path)."""
    found = connection.execute(CATCH_UP, {"user_id": user_id, "after_id": after_id})
    return [_frame(r.id, r.kind, r.payload, r.created_at, r.read_at) for r in found]


# The session row (accounts.PEEK_SESSION) with the user's catch-up page beside it: one row
# per notification, or one row with no notification (LEFT JOIN LATERAL ... ON true).
_PAGE = _catch_up_page(_LS.c.user_id).lateral("page")
_SUBSCRIBE = (
    accounts.PEEK_SESSION.add_columns(
        _PAGE.c.id.label("n_id"),
        _PAGE.c.kind.label("n_kind"),
        _PAGE.c.payload.label("n_payload"),
        _PAGE.c.created_at.label("n_created_at"),
        _PAGE.c.read_at.label("n_read_at"),
    )
    .outerjoin(_PAGE, true())
    .order_by(_PAGE.c.id)
)


class PostgresConnectReads:
    """A connect's reads on PostgreSQL, awaited on the event loop.

    A pool is made in each loop at its first read and closed by `close`, in that loop,
    when the app stops; a later read makes a new one (tests start the app many times).
    Connections are in autocommit (no BEGIN and ROLLBACK round trips; each statement
    reads its own snapshot) and prepare their statements at once. A read on a
    connection the server dropped runs again, once, on a fresh one.
    """

    def __init__(self, engine: Engine, size: int) -> None:
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._size = size
        self._peek = _Compiled(accounts.PEEK_SESSION, engine)
        self._subscribe = _Compiled(_SUBSCRIBE, engine)
        # One pool per event loop that reads: a connection and the pool's workers belong
        # to one loop, and tests run one app in several (one per TestClient).
        self._pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}

    async def peek(self, settings: Settings, token: str) -> accounts.SessionPeek | None:
        """accounts.peek_session, on the loop."""
        rows = await self._fetch(self._peek, token_hash=token_hash(token))
        return accounts.peek_from_row(settings, rows[0] if rows else None)

    async def subscribe(
        self, settings: Settings, token: str, after_id: int
    ) -> tuple[accounts.SessionPeek | None, list[dict[str, Any]]]:
        """The session behind `token` and, when it is live, its user's notifications
        above `after_id` (oldest first, at most CATCH_UP_PAGE): one statement."""
        rows = await self._fetch(self._subscribe, token_hash=token_hash(token), after_id=after_id)
        found = accounts.peek_from_row(settings, rows[0] if rows else None)
        if found is None:
            return None, []
        page = [
            _frame(r.n_id, r.n_kind, r.n_payload, r.n_created_at, r.n_read_at)
            for r in rows
            if r.n_id is not None
        ]
        return found, page

    async def _fetch(self, compiled: _Compiled, **values: Any) -> list[Any]:
        params = {**compiled.defaults, **values}
        pool = await self._open()
        for attempt in (1, 2):
            async with pool.connection() as connection:
                try:
                    cursor = await connection.execute(compiled.sql, params)
                    return [compiled.row(raw) for raw in await cursor.fetchall()]
                except psycopg.OperationalError:
                    if attempt == 2 or not connection.broken:
                        raise
            # Dropped by the server: most likely so were the others (a restart). The
            # pool replaces this one; the check finds and replaces the rest before the
            # read, safe to run again, runs once more.
            await pool.check()
        raise AssertionError("unreachable")

    async def _open(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = AsyncConnectionPool(
                self._conninfo,
                min_size=self._size,
                max_size=self._size,
                open=False,
                name=APPLICATION_NAME,
                kwargs={
                    "autocommit": True,
                    "prepare_threshold": 0,
                    # Which process a connection serves (pg_stat_activity).
                    "application_name": f"{APPLICATION_NAME} {os.getpid()}",
                },
                # A page retries a connect that fails; it should not wait long for one.
                timeout=10,
                max_lifetime=READER_RECYCLE_SECONDS,
            )
            # Opens at once (no await before the pool is marked open), so a read that
            # comes meanwhile waits for a connection rather than finding it closed.
            await pool.open()
        return pool

    async def close(self) -> None:
        """Close the running loop's pool (each loop that read closes its own)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()


class _Compiled:
    """A Core statement compiled once for psycopg: its SQL (pyformat, %(name)s), its
    fixed parameters (LIMIT's), and how to turn a row of driver values into what the
    SQLAlchemy path hands back (named fields, each column type's conversion: aware UTC
    datetimes from server.clock.UTCDateTime)."""

    def __init__(self, statement: Any, engine: Engine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql: str = compiled.string
        self.defaults: dict[str, Any] = dict(compiled.params)
        columns = statement.selected_columns
        self._type: Any = namedtuple("Row", list(columns.keys()))  # type: ignore[misc]
        self._convert = [column.type.result_processor(engine.dialect, None) for column in columns]

    def row(self, values: tuple[Any, ...]) -> Any:
        return self._type._make(
            convert(value) if convert is not None else value
            for convert, value in zip(self._convert, values, strict=True)
        )
