"""The server's side of the notes socket (signaling/notes.py's `NoteGate`).

Every database step runs in a thread with its own short session: an open note never
holds a DB session for its life. Signaling imports nothing from here; the app hands
it this object (server/app.py), as it does `server.calls.gatekeeper`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError
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
    this connection before its transaction begins and restored after.
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


class ServerNoteGate:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        # note id -> (revision, text) as this process last wrote it: a hint for the fast
        # path, never trusted (the write is conditional on the revision).
        self.known: dict[int, tuple[int, str]] = {}
        self._lock = threading.Lock()
        self._fast: Engine | None = None

    def close(self) -> None:
        if self._fast is not None:
            self._fast.dispose()
            self._fast = None

    async def _db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                return work(session)

        return await asyncio.to_thread(run)

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

        def work() -> service.Applied:
            known = self.known.get(note.note_id)
            applied = None
            if known is not None and known[0] == rev:
                applied = self._apply_known(note, known, identity, client_id, seq, rev, frame)
            if applied is None:
                applied = general()
            if applied.text is not None:
                self._remember(note.note_id, int(applied.record["rev"]), applied.text)
            return applied

        try:
            applied = await asyncio.to_thread(work)
        except AppError as refusal:
            raise NoteRefusal(refusal.code, refusal.message) from None
        author_only = applied.duplicate or applied.record["type"] == "ack"
        if not author_only:
            metrics.record_note_update()
        return applied.record, author_only

    def _remember(self, note_id: int, revision: int, text: str) -> None:
        with self._lock:
            known = self.known.get(note_id)
            if known is None or known[0] < revision:
                self.known[note_id] = (revision, text)

    def _apply_known(
        self,
        note: NoteAccess,
        known: tuple[int, str],
        identity: Identity,
        client_id: str,
        seq: int,
        rev: int,
        frame: dict[str, Any],
    ) -> service.Applied | None:
        """The common case, a writer up to date with what this process last wrote: one
        conditional write (service.apply_known), or None to take the general path."""
        fast = self._fast_engine()
        try:
            with fast.connect() as connection, durable(connection):
                applied = service.apply_known(
                    connection,
                    note.note_id,
                    known,
                    author_id=identity.user_id or 0,
                    client_id=client_id,
                    client_seq=seq,
                    base_revision=rev,
                    op_json=frame.get("op"),
                    max_chars=self.settings.notes_max_chars,
                )
                connection.commit()  # nothing to commit in autocommit (PostgreSQL)
                return applied
        except DBAPIError:
            # A pooled connection that died (the fast pool does not ping first): the
            # general path, on the app's pre-pinged pool, decides; this pool starts afresh.
            log.warning("notes: fast write failed; taking the general path", exc_info=True)
            fast.dispose()
            return None

    def _fast_engine(self) -> Engine:
        """PostgreSQL: a pool in autocommit, without the ping on checkout and the rollback
        on return, so the fast write is one round trip. SQLite: the app's engine."""
        if self.engine.dialect.name != "postgresql":
            return self.engine
        if self._fast is None:
            self._fast = create_engine(
                self.engine.url,
                isolation_level="AUTOCOMMIT",
                pool_size=4,
                max_overflow=8,
                pool_reset_on_return=None,
            )
        return self._fast

    async def updates_between(
        self, note: NoteAccess, after: int, upto: int
    ) -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            return service.updates_between(session, note.consult_id, after, upto)

        return await self._db(work)
