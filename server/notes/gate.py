"""The server's side of the notes socket (signaling/notes.py's `NoteGate`).

Every database step runs in a thread with its own short session: an open note never
holds a DB session for its life. Signaling imports nothing from here; the app hands
it this object (server/app.py), as it does `server.calls.gatekeeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
from sqlalchemy import URL, Connection, Engine
from sqlmodel import Session

from server.accounts import service as accounts
from server.accounts.models import User
from server.audit import service as audit
from server.consults import access
from server.consults.errors import ConsultNotFound
from server.errors import AppError
from server.notes import service
from server.ops import metrics
from server.settings import Settings
from signaling.gate import Identity
from signaling.notes import NoteAccess, NoteRefusal

T = TypeVar("T")
log = logging.getLogger("dari.notes.gate")


@contextlib.contextmanager
def durable(connection: Connection) -> Iterator[None]:
    """An acknowledged keystroke survives a power cut, not only a crash of the process.

    PostgreSQL's commit waits for its WAL to reach the disk (synchronous_commit, on by
    default). The app runs SQLite with synchronous=NORMAL (WAL written, not flushed, at
    each commit); a note's update is committed with synchronous=FULL instead, set on
    this connection before its transaction begins and restored after (the fast path's
    writer keeps its own connection at FULL: `SqliteWriter`).
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw: Any = connection.connection.dbapi_connection
    raw.execute("PRAGMA synchronous=FULL")
    try:
        yield
    finally:
        raw.execute("PRAGMA synchronous=NORMAL")


# SQLAlchemy's text form of a DateTime on SQLite, which UTCDateTime reads back.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _settle(future: asyncio.Future[bool], result: bool | BaseException) -> None:
    if future.cancelled():
        return  # the editor went away meanwhile; the write stands (a resend is a duplicate)
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class SqliteWriter:
    """SQLite: one thread, with its own connection, writes the fast path's keystrokes.

    SQLite has one writer at a time anyway. A thread that keeps one connection, durable
    (synchronous=FULL, set once) and with plain statements (the driver caches them),
    spares each keystroke a pool checkout, two PRAGMA switches, the ORM's statement
    handling and the default executor's bookkeeping.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.jobs: queue.SimpleQueue[
            tuple[service.FastWrite, asyncio.Future[bool], asyncio.AbstractEventLoop] | None
        ] = queue.SimpleQueue()
        self.closed = False
        self.lock = threading.Lock()  # no job is queued behind the closing sentinel
        self.thread = threading.Thread(target=self._run, name="notes-sqlite-writer", daemon=True)
        self.thread.start()

    async def write(self, fast: service.FastWrite) -> bool | None:
        """True once the update is committed; False if the note had moved on (no write);
        None once closed (the general path takes it)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        with self.lock:
            if self.closed:
                return None
            self.jobs.put((fast, future, loop))
        return await future

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.jobs.put(None)
        self.thread.join(timeout=30)

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL"):
                connection.execute(f"PRAGMA {pragma}")
            while (job := self.jobs.get()) is not None:
                fast, future, loop = job
                result: bool | BaseException
                try:
                    result = self._write(connection, fast)
                except Exception as error:
                    result = error
                with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                    loop.call_soon_threadsafe(_settle, future, result)
        finally:
            connection.close()

    @staticmethod
    def _write(connection: sqlite3.Connection, fast: service.FastWrite) -> bool:
        params = {**fast.params, "now": fast.params["now"].strftime(_SQLITE_TIME)}
        connection.execute("BEGIN IMMEDIATE")
        try:
            if connection.execute(fast.sqlite_move, params).rowcount != 1:
                connection.execute("ROLLBACK")
                return False
            connection.execute(service.FAST_SQLITE_INSERT, params)
            connection.execute("COMMIT")
            return True
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise


class PostgresWriter:
    """PostgreSQL: the fast write runs on the event loop, on psycopg's async connections
    in autocommit: one round trip, commit included, a statement prepared once per
    connection, and no hand-off to a thread and back."""

    def __init__(self, url: URL, size: int = 4) -> None:
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.size = size
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        # Every connection opened and not yet closed, idle or busy: close() ends them all.
        self.connections: set[psycopg.AsyncConnection[Any]] = set()
        self.closed = False

    async def write(self, fast: service.FastWrite) -> bool | None:
        """True once committed; False if the note had moved on (no write); None if all
        connections are busy (many writers at once) or the writer is closed: the general
        path takes it."""
        if self.closed:
            return None
        if self.idle:
            connection = self.idle.pop()
        elif len(self.connections) < self.size:
            connection = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            self.connections.add(connection)
        else:
            return None
        try:
            cursor = await connection.execute(fast.postgresql, fast.params, prepare=True)
        except BaseException:
            # Failed or cancelled mid-statement: this connection is never reused.
            self._discard(connection)
            raise
        if self.closed:  # closed while this write was in flight
            self._discard(connection)
        else:
            self.idle.append(connection)
        return cursor.rowcount == 1

    def _discard(self, connection: psycopg.AsyncConnection[Any]) -> None:
        # Closing an async connection does no I/O: libpq's finish() is the whole of it,
        # so it can be done here and from the app's (synchronous) shutdown alike.
        self.connections.discard(connection)
        connection.pgconn.finish()

    def close(self) -> None:
        self.closed = True
        self.idle.clear()
        for connection in list(self.connections):
            self._discard(connection)


class ServerNoteGate:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        # note id -> (revision, text) as this process last wrote it: a hint for the fast
        # path, never trusted (the write is conditional on the revision).
        self.known: dict[int, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._writer: SqliteWriter | PostgresWriter | None = None
        # Database work running in threads now. A socket's handler can be cancelled while
        # its thread goes on with a pooled connection; shutdown waits for those threads,
        # so that every connection is back in the pool before the app disposes it (one
        # checked in after that is dropped unclosed, a ResourceWarning under psycopg).
        self._threads = 0
        self._threads_done = threading.Condition()
        # Raised by close(): work handed to a thread before it and started after it
        # does not run (its loop is ending; the engine may be disposed).
        self._generation = 0

    def close(self) -> None:
        """At the app's shutdown. (Tests start one app several times: a later use starts
        a new writer, which the next shutdown closes.)"""
        with self._threads_done:
            self._generation += 1
            # Only threads that have started are counted, and they finish their work;
            # the bound is a safety net against a database that hangs.
            if not self._threads_done.wait_for(lambda: self._threads == 0, timeout=30):
                log.warning(
                    "notes gate: %d database thread(s) still out at shutdown", self._threads
                )
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _in_thread(self, work: Callable[[], T]) -> T:
        generation = self._generation

        def run() -> T:
            # Counted once started, not when handed over: a hand-over whose thread
            # never ran (its event loop ended first) must not hold up every later
            # shutdown, as it did when it was counted at once.
            with self._threads_done:
                if self._generation != generation:
                    raise RuntimeError("the notes gate was closed before this work started")
                self._threads += 1
            try:
                return work()
            finally:
                with self._threads_done:
                    self._threads -= 1
                    self._threads_done.notify_all()

        return await asyncio.to_thread(run)

    async def _db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                return work(session)

        return await self._in_thread(run)

    def _participant(self, session: Session, user: User, public_id: str) -> access.Viewing | None:
        try:
            return access.load_consult(session, user, public_id, need=access.Need.PARTICIPANT)
        except ConsultNotFound:
            return None

    async def open_note(self, identity: Identity, public_id: str, ip: str) -> NoteAccess | None:
        def work(session: Session) -> NoteAccess | None:
            user = session.get(User, identity.user_id)
            if user is None or not user.active:
                return None
            viewing = self._participant(session, user, public_id)
            if viewing is None:
                return None
            consult = viewing.consult
            note = service.ensure_note(session, consult.id or 0)
            # Opening a note is when its old log is folded away: no scheduler needed.
            service.compact(
                session,
                consult.id or 0,
                retention=timedelta(hours=self.settings.notes_log_retention_hours),
            )
            audit.record(
                session,
                "note.opened",
                actor_id=user.id,
                ip=ip,
                object_type="consult",
                object_id=consult.public_id,
                organisation_id=consult.organisation_id,
            )
            session.commit()
            return NoteAccess(note.id or 0, consult.id or 0, consult.public_id)

        return await self._db(work)

    async def recheck(self, cookie: str | None, note: NoteAccess, active: bool) -> str | None:
        def work(session: Session) -> str | None:
            auth = accounts.resolve_session(session, self.settings, cookie)
            if auth is None or self._participant(session, auth[0], note.public_id) is None:
                return "ended"
            if active:
                # Typing in the note is activity and keeps the login alive; an idle open
                # page does not (shared clinic PCs: the idle timeout must still end it).
                session.commit()
            found = service.find_note(session, note.consult_id)
            return "frozen" if found is not None and found.frozen_at is not None else None

        return await self._db(work)

    async def snapshot(self, note: NoteAccess) -> dict[str, Any]:
        def work(session: Session) -> dict[str, Any]:
            found = service.find_note(session, note.consult_id)
            assert found is not None  # created when the note was opened
            return {
                "rev": found.revision,
                "text": service.current_text(session, found),
                "frozen": found.frozen_at is not None,
                "oldest": found.compacted_revision,
            }

        return await self._db(work)

    async def apply(
        self, note: NoteAccess, identity: Identity, client_id: str, frame: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        seq, rev = frame.get("seq"), frame.get("rev")
        if not isinstance(seq, int) or not isinstance(rev, int):
            raise NoteRefusal("invalid_operation", "seq and rev must be integers")

        def general() -> service.Applied:
            with self.engine.connect() as connection, durable(connection):
                with Session(bind=connection, expire_on_commit=False) as session:
                    applied = service.apply(
                        session,
                        note.consult_id,
                        author_id=identity.user_id or 0,
                        client_id=client_id,
                        client_seq=seq,
                        base_revision=rev,
                        op_json=frame.get("op"),
                        max_chars=self.settings.notes_max_chars,
                    )
                    # Committed (to disk) before anyone, the author included, hears of it.
                    session.commit()
                    return applied

        try:
            applied = await self._apply_known(note, identity, client_id, seq, rev, frame)
            if applied is None:
                applied = await self._in_thread(general)
        except AppError as refusal:
            raise NoteRefusal(refusal.code, refusal.message) from None
        if applied.text is not None:
            self._remember(note.note_id, int(applied.record["rev"]), applied.text)
        author_only = applied.duplicate or applied.record["type"] == "ack"
        if not author_only:
            metrics.record_note_update()
        return applied.record, author_only

    def _remember(self, note_id: int, revision: int, text: str) -> None:
        with self._lock:
            known = self.known.get(note_id)
            if known is None or known[0] < revision:
                self.known[note_id] = (revision, text)

    async def _apply_known(
        self,
        note: NoteAccess,
        identity: Identity,
        client_id: str,
        seq: int,
        rev: int,
        frame: dict[str, Any],
    ) -> service.Applied | None:
        """The common case, a writer up to date with what this process last wrote: one
        conditional write (service.prepare_known), or None to take the general path."""
        known = self.known.get(note.note_id)
        if known is None or known[0] != rev:
            return None
        fast = service.prepare_known(
            note.note_id,
            known,
            author_id=identity.user_id or 0,
            client_id=client_id,
            client_seq=seq,
            base_revision=rev,
            op_json=frame.get("op"),
            max_chars=self.settings.notes_max_chars,
        )
        writer = self._fast_writer()
        if fast is None or writer is None:
            return None
        try:
            written = await writer.write(fast)
        except (psycopg.Error, sqlite3.Error, OSError):
            # A connection that died, a lock that timed out: the general path, on the
            # app's pre-pinged pool, decides (a write that did commit is then a resend).
            log.warning("notes: fast write failed; taking the general path", exc_info=True)
            return None
        return fast.applied if written else None

    def _fast_writer(self) -> SqliteWriter | PostgresWriter | None:
        """The fast path's writer for this database, started on first use (None: none)."""
        if self._writer is None:
            url = self.engine.url
            if url.get_backend_name() == "postgresql":
                self._writer = PostgresWriter(url)
            elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
                self._writer = SqliteWriter(url.database or "")
        return self._writer

    async def updates_between(
        self, note: NoteAccess, after: int, upto: int
    ) -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            return service.updates_between(session, note.consult_id, after, upto)

        return await self._db(work)
