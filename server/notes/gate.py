"""The server's side of the notes socket (signaling/notes.py's `NoteGate`).

Every database step runs in a thread with its own short session: an open note never
holds a DB session for its life. Signaling imports nothing from here; the app hands
it this object (server/app.py), as it does `server.calls.gatekeeper`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

from server.accounts import service as accounts
from server.accounts.models import User
from server.audit import service as audit
from server.consults import access
from server.consults.errors import ConsultNotFound
from server.errors import AppError
from server.notes import service
from server.settings import Settings
from signaling.gate import Identity
from signaling.notes import NoteAccess, NoteRefusal

T = TypeVar("T")


class ServerNoteGate:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

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
                "text": found.text,
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

        def work(session: Session) -> service.Applied:
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
            # Committed before anyone, the author included, hears of it.
            session.commit()
            return applied

        try:
            applied = await self._db(work)
        except AppError as refusal:
            raise NoteRefusal(refusal.code, refusal.message) from None
        author_only = applied.duplicate or applied.record["type"] == "ack"
        return applied.record, author_only

    async def updates_between(
        self, note: NoteAccess, after: int, upto: int
    ) -> list[dict[str, Any]]:
        def work(session: Session) -> list[dict[str, Any]]:
            return service.updates_between(session, note.consult_id, after, upto)

        return await self._db(work)
