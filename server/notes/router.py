"""Shared-note routes: the note's state, an excerpt for the report, and the live WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from anyio import to_thread
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketDisconnected, WebSocketState

from server.accounts import service as accounts
from server.accounts.deps import SESSION_COOKIE
from server.accounts.models import LoginSession, User
from server.accounts.security import token_hash
from server.audit import service as audit
from server.consults import access
from server.consults.deps import ConsultForAssigned, ConsultForParticipant
from server.consults.errors import ConsultNotFound
from server.consults.models import ConsultRequest
from server.db import SessionDep
from server.errors import AppError
from server.notes import service
from server.notes.fanout import Fanout
from server.settings import Settings
from server.validation import QueryCount

log = logging.getLogger("dari.notes")
router = APIRouter()

REFUSED = 4403  # not signed in, wrong origin, or not a participant: nothing was sent
BAD_MESSAGE = 4400
MAX_MESSAGE = 1_000_000
RECHECK_SECONDS = 4.0


@router.get("/api/consults/{public_id}/notes")
def note_state(viewing: ConsultForParticipant, session: SessionDep) -> dict[str, Any]:
    """The note's text and revision (participants only; others get 404)."""
    return service.state(session, viewing.consult)


@router.get("/api/consults/{public_id}/notes/draft")
def note_draft(
    viewing: ConsultForAssigned,
    session: SessionDep,
    start: QueryCount = None,
    end: QueryCount = None,
) -> dict[str, Any]:
    """The whole note or a selection (code points), to start the report draft from."""
    text = service.excerpt(session, viewing.consult, start, end)
    return {"text": text, "rev": service.state(session, viewing.consult)["rev"]}


# -- the WebSocket ----------------------------------------------------------------------------
def fanout_of(websocket: WebSocket) -> Fanout:
    state = websocket.app.state
    fanout: Fanout | None = getattr(state, "notes_fanout", None)
    if fanout is None:
        fanout = Fanout(state.settings.redis_url)
        state.notes_fanout = fanout
    return fanout


def origin_allowed(websocket: WebSocket, settings: Settings) -> bool:
    """Only our own pages may open the socket with the user's cookie (cross-site hijacking)."""
    origin = websocket.headers.get("origin")
    if not origin:
        return False
    if origin in settings.allowed_origins:
        return True
    return urlsplit(origin).netloc == websocket.headers.get("host", "")


def _participant(
    session: Session, settings: Settings, token: str | None, public_id: str
) -> access.Viewing | None:
    """The consult as its participant sees it, if the login is still valid; else None."""
    auth = accounts.resolve_session(session, settings, token)
    if auth is None:
        return None
    try:
        return access.load_consult(session, auth[0], public_id, need=access.Need.PARTICIPANT)
    except ConsultNotFound:
        return None


def _authorise(
    engine: Engine, settings: Settings, token: str | None, public_id: str, ip: str
) -> tuple[User, ConsultRequest, int] | None:
    """Check the session and the participant rule in one short transaction."""
    with Session(engine, expire_on_commit=False) as session:
        viewing = _participant(session, settings, token, public_id)
        if viewing is None:
            session.commit()  # keep the session's last-seen touch
            return None
        user, consult = viewing.user, viewing.consult
        note = service.ensure_note(session, consult.id or 0)
        # Opening a note is when its old log is folded away: no scheduler needed.
        service.compact(
            session,
            consult.id or 0,
            retention=timedelta(hours=settings.notes_log_retention_hours),
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
        return user, consult, note.id or 0


class Connection:
    """One open editor: a queue in front of the socket, so sends keep revision order."""

    def __init__(self, websocket: WebSocket, engine: Engine, consult: ConsultRequest) -> None:
        self.websocket = websocket
        self.engine = engine
        self.consult_id = consult.id or 0
        self.public_id = consult.public_id
        self.client_id = ""
        self.sent_rev = 0
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.frozen = False
        self.checked_at = time.monotonic()
        self.active = False  # an edit since the last check
        self.settings: Settings | None = None
        self.token: str | None = None

    def recheck(self) -> str | None:
        """Every few seconds: "ended" if the login ended or expired or the user is no longer
        a participant (the socket must close), "frozen" if the report was signed."""
        now = time.monotonic()
        if now - self.checked_at < RECHECK_SECONDS or self.settings is None:
            return None
        self.checked_at = now
        active, self.active = self.active, False
        with Session(self.engine) as session:
            if _participant(session, self.settings, self.token, self.public_id) is None:
                return "ended"
            if active:
                # Typing in the note is activity and keeps the login alive; an idle open
                # page does not (shared clinic PCs: the idle timeout must still end it).
                session.commit()
            note = service.find_note(session, self.consult_id)
            return "frozen" if note is not None and note.frozen_at is not None else None

    def listener(self, message: dict[str, Any]) -> None:
        if message.get("type") == "presence" and message.get("client") == self.client_id:
            return
        # Thread-safe: the publisher may run on another event loop (tests run one per client).
        self.loop.call_soon_threadsafe(self.queue.put_nowait, message)

    def _read(self, after: int, upto: int) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            return service.updates_between(session, self.consult_id, after, upto)

    async def sender(self) -> None:
        while True:
            message = await self.queue.get()
            if message is None:
                return
            kind = message.get("type")
            if kind == "op" or kind == "_upto":
                rev = int(message["rev"])
                if rev <= self.sent_rev:
                    continue  # already sent (a duplicate from the fan-out or a resend)
                if kind == "_upto" or rev > self.sent_rev + 1:
                    # A gap (another process, or a reconnect): the database is the truth.
                    for record in await to_thread.run_sync(self._read, self.sent_rev, rev):
                        await self.websocket.send_json(record)
                        self.sent_rev = int(record["rev"])
                    continue
                self.sent_rev = rev
            await self.websocket.send_json(message)


# This process's open note sockets: (user id, hash of the session cookie), so a session
# that ends closes them too (signaling's SessionEnded, through close_ended_sessions).
_open_sockets: dict[WebSocket, tuple[int, str]] = {}


async def close_ended_sessions(engine: Engine, user_id: int, session_id: str | None) -> None:
    """Close the note sockets of a login session that ended (None: all of the user's)."""
    targets = [(ws, digest) for ws, (uid, digest) in _open_sockets.items() if uid == user_id]
    if not targets:
        return
    if session_id is not None and session_id.isdigit():

        def lookup() -> str | None:
            with Session(engine) as session:
                record = session.get(LoginSession, int(session_id))
                return record.token_hash if record is not None else None

        wanted = await to_thread.run_sync(lookup)
        targets = [(ws, digest) for ws, digest in targets if digest == wanted]
    for websocket, _ in targets:
        _open_sockets.pop(websocket, None)
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close(REFUSED, "session ended")


async def note_socket(websocket: WebSocket) -> None:
    """Live editing: join with a revision, receive missed updates, then send and receive ops."""
    public_id = str(websocket.path_params["public_id"])
    settings: Settings = websocket.app.state.settings
    engine: Engine = websocket.app.state.engine
    await websocket.accept()
    ip = websocket.client.host if websocket.client else ""
    allowed = None
    if origin_allowed(websocket, settings):
        allowed = await to_thread.run_sync(
            _authorise, engine, settings, websocket.cookies.get(SESSION_COOKIE), public_id, ip
        )
    if allowed is None:
        await websocket.close(REFUSED)
        return
    user, consult, note_id = allowed
    _open_sockets[websocket] = (
        user.id or 0,
        token_hash(websocket.cookies.get(SESSION_COOKIE) or ""),
    )
    fanout = fanout_of(websocket)
    await fanout.start()
    connection = Connection(websocket, engine, consult)
    connection.settings, connection.token = settings, websocket.cookies.get(SESSION_COOKIE)
    sender: asyncio.Task[None] | None = None
    subscribed = False
    try:
        join = await _receive(websocket)
        client_id = str(join.get("client", ""))
        if join.get("type") != "join" or not service.CLIENT_ID.match(client_id):
            await websocket.close(BAD_MESSAGE)
            return
        connection.client_id = client_id
        # Subscribe first, then read: an update committed in between arrives either way,
        # and the sender drops what it has already sent.
        fanout.subscribe(note_id, connection.listener)
        subscribed = True
        snapshot = await to_thread.run_sync(_snapshot, engine, consult.id or 0)
        rev = join.get("rev")
        if isinstance(rev, int) and 0 <= rev <= snapshot["rev"] and rev >= snapshot["oldest"]:
            connection.sent_rev = rev  # a rejoin: send only what was missed
            connection.queue.put_nowait({"type": "_upto", "rev": snapshot["rev"]})
        else:
            connection.sent_rev = snapshot["rev"]
            await websocket.send_json(
                {"type": "snapshot", "rev": snapshot["rev"], "text": snapshot["text"]}
            )
        connection.frozen = bool(snapshot["frozen"])
        connection.queue.put_nowait(
            {
                "type": "ready",
                "frozen": snapshot["frozen"],
                "you": user.name,
                "rev": snapshot["rev"],
            }
        )
        sender = asyncio.create_task(connection.sender())
        await fanout.publish(note_id, _presence(user, client_id, {"joined": True}))
        await _serve(websocket, connection, fanout, user, note_id, settings)
    except WebSocketDisconnect:
        pass
    finally:
        _open_sockets.pop(websocket, None)
        if subscribed:
            fanout.unsubscribe(note_id, connection.listener)
            try:
                await fanout.publish(note_id, {"type": "leave", "client": connection.client_id})
            except Exception:
                # Broad on purpose: we are closing, perhaps because of an error that must
                # not be replaced by this one; the others' presence list is only stale.
                log.warning("notes: could not announce a leave (note %s)", note_id, exc_info=True)
        if sender is not None:
            sender.cancel()
            # Cancelled just now, or it had stopped because the client was gone; any other
            # failure of the sender (a database error) is raised, not hidden.
            with contextlib.suppress(
                asyncio.CancelledError, WebSocketDisconnect, WebSocketDisconnected
            ):
                await sender


def _snapshot(engine: Engine, consult_id: int) -> dict[str, Any]:
    with Session(engine) as session:
        note = service.find_note(session, consult_id)
        assert note is not None  # created during authorisation
        return {
            "rev": note.revision,
            "text": note.text,
            "frozen": note.frozen_at is not None,
            "oldest": note.compacted_revision,
        }


async def _receive(websocket: WebSocket) -> dict[str, Any]:
    if websocket.application_state != WebSocketState.CONNECTED:
        # Closed from outside (close_ended_sessions): the session ended.
        raise WebSocketDisconnect(REFUSED)
    raw = await websocket.receive_text()
    if len(raw) > MAX_MESSAGE:
        raise ValueError("message too large")
    try:
        data = json.loads(raw)
    except RecursionError:  # thousands of nested brackets: a bad message, not a crash
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("a message is a JSON object")
    return data


def _presence(user: User, client_id: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": "presence", "client": client_id, "user": user.name, **extra}


async def _serve(
    websocket: WebSocket,
    connection: Connection,
    fanout: Fanout,
    user: User,
    note_id: int,
    settings: Settings,
) -> None:
    engine = connection.engine
    while True:
        try:
            message = await _receive(websocket)
        except ValueError:
            await websocket.close(BAD_MESSAGE)
            return
        kind = message.get("type")
        if kind == "ping":
            connection.queue.put_nowait({"type": "pong"})
            verdict = await to_thread.run_sync(connection.recheck)
            if verdict == "ended":
                # Logged out, expired, or no longer a participant (unless already closed).
                if websocket.application_state == WebSocketState.CONNECTED:
                    await websocket.close(REFUSED)
                return
            if verdict == "frozen" and not connection.frozen:
                # The report was signed (perhaps by another process): read-only from now on.
                connection.frozen = True
                connection.queue.put_nowait({"type": "error", "code": "note_frozen"})
        elif kind == "presence":
            cursor = message.get("cursor")
            extra: dict[str, Any] = {"typing": bool(message.get("typing"))}
            if (
                isinstance(cursor, list)
                and len(cursor) == 2
                and all(isinstance(c, int) and not isinstance(c, bool) for c in cursor)
            ):
                extra["cursor"] = cursor
                extra["rev"] = message.get("rev") if isinstance(message.get("rev"), int) else None
            await fanout.publish(note_id, _presence(user, connection.client_id, extra))
        elif kind == "op":
            try:
                applied = await to_thread.run_sync(
                    _apply, engine, connection, user.id or 0, message, settings.notes_max_chars
                )
            except AppError as refusal:
                connection.queue.put_nowait(
                    {"type": "error", "code": refusal.code, "message": refusal.message}
                )
                continue
            connection.active = True
            if applied.duplicate:
                connection.queue.put_nowait(applied.record)  # to this editor only
            else:
                await fanout.publish(note_id, applied.record)
        else:
            connection.queue.put_nowait({"type": "error", "code": "unknown_message"})


def _apply(
    engine: Engine, connection: Connection, author_id: int, message: dict[str, Any], max_chars: int
) -> service.Applied:
    seq, rev = message.get("seq"), message.get("rev")
    if not isinstance(seq, int) or not isinstance(rev, int):
        raise AppError("invalid_operation", "seq and rev must be integers", 422)
    with Session(engine, expire_on_commit=False) as session:
        applied = service.apply(
            session,
            connection.consult_id,
            author_id=author_id,
            client_id=connection.client_id,
            client_seq=seq,
            base_revision=rev,
            op_json=message.get("op"),
            max_chars=max_chars,
        )
        # Committed before anyone, the author included, hears of it.
        session.commit()
        return applied


# A plain Starlette route: the app-wide CSRF dependency is for HTTP requests; the socket
# is protected by the Origin check and the session cookie instead.
websocket_routes = [WebSocketRoute("/notes/ws/{public_id}", note_socket)]
