"""The shared-notes socket on the signaling stack (docs/notes.md, "Protocol").

The note's WebSocket uses what every other socket of Dari uses: the service's origin
check and authentication (`SignalingService.origin_ok` / `authenticate`), its frame
reader (size limit, rate limit, bad-frame count, heartbeat timeout), error frames,
and its broker for fan-out across processes and for presence with an expiry. What is
particular to notes comes in through `NoteGate`, which the server implements
(server/notes/gate.py): signaling imports nothing of the server.

Ordering: updates are sent to each editor in strict revision order; a gap (an update
from another process that overtook one, a lost broker message, a rejoin) is filled
from the gate, whose database is the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from signaling import protocol as p
from signaling.app import Closed, FrameReader, SignalingService
from signaling.broker import Broker
from signaling.connection import SOCKET_GONE
from signaling.gate import Identity
from signaling.serving import DirectSocket, claim

log = logging.getLogger("dari.signaling.notes")

REFUSED = 4403  # not signed in, wrong origin, or not a participant: nothing was sent
BAD_MESSAGE = 4400
MAX_NOTE_FRAME = 1_000_000  # an operation may carry a long paste
MAX_DEPTH = 8  # no note frame nests deeper; deeper JSON is refused before parsing
HEARTBEAT_WAIT = 20.0  # the panel pings every 5 s; silence this long closes (4408)
RECHECK_SECONDS = 4.0  # login and frozen state are checked at most this often (on pings)
PRESENCE_TTL = 12.0  # an editor not heard of for this long is gone (its process died)
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
NOTE_TYPES = frozenset({"join", "op", "presence", "ping"})


@dataclass(frozen=True)
class NoteAccess:
    """An open note as the gate granted it to one participant."""

    note_id: int
    consult_id: int
    public_id: str


class NoteRefusal(Exception):
    """An operation the gate refused (nothing was written); `code` goes to the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NoteGate(Protocol):
    """What the notes socket needs from the rest of Dari (server/notes/gate.py)."""

    async def open_note(self, identity: Identity, public_id: str, ip: str) -> NoteAccess | None:
        """The note, if this identity is a participant of the consult (audited), else None."""
        ...

    async def recheck(self, cookie: str | None, note: NoteAccess, active: bool) -> str | None:
        """ "ended" (login over, or no longer a participant), "frozen" (signed), or None."""
        ...

    async def snapshot(self, note: NoteAccess) -> dict[str, Any]:
        """{"rev", "text", "frozen", "oldest"}: the note now and its oldest kept revision."""
        ...

    async def apply(
        self, note: NoteAccess, identity: Identity, client_id: str, frame: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """(record, for_author_only): the stored update, or an "ack" / a resend's record."""
        ...

    async def updates_between(
        self, note: NoteAccess, after: int, upto: int
    ) -> list[dict[str, Any]]: ...


def _depth(text: str) -> int:
    """How deep brackets nest, ignoring those inside strings (a linear scan)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_note_frame(data: str | bytes) -> dict[str, Any]:
    """One frame from an editor, or ProtocolError (answered with an error frame)."""
    if isinstance(data, bytes):
        try:
            data = data.decode()
        except UnicodeDecodeError:
            raise p.ProtocolError("bad_frame", "not UTF-8 text") from None
    # Counting brackets is done in C; only a frame with enough of them is scanned.
    if data.count("[") + data.count("{") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise p.ProtocolError("bad_frame", "JSON nested too deeply")
    try:
        frame = json.loads(data)
    except (ValueError, RecursionError):
        raise p.ProtocolError("bad_frame", "not valid JSON") from None
    if not isinstance(frame, dict):
        raise p.ProtocolError("bad_frame", "a frame is a JSON object")
    kind = frame.get("type")
    if kind not in NOTE_TYPES:
        raise p.ProtocolError("unknown_message", f"unknown frame type {str(kind)[:40]!r}")
    return frame


# One encoder, built once: json.dumps with options builds a new one on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dump(message: dict[str, Any]) -> str:
    return _ENCODER.encode(message)


class Editor:
    """One open editor: a queue in front of the socket, so updates go out in revision order."""

    def __init__(
        self,
        websocket: WebSocket | DirectSocket,
        gate: NoteGate,
        note: NoteAccess,
        identity: Identity,
        client_id: str,
    ) -> None:
        self.websocket = websocket
        self.gate = gate
        self.note = note
        self.identity = identity
        self.client_id = client_id
        self.sent_rev = 0
        # (message, its JSON text if already serialised: the broker's text is reused)
        self.queue: asyncio.Queue[tuple[dict[str, Any], str | None] | None] = asyncio.Queue()
        # Held while one message is being sent (by the sender, or inline by `send_now`):
        # a message is always either in the queue or being sent under this lock.
        self.sending = asyncio.Lock()
        self.loop = asyncio.get_running_loop()
        self.frozen = False
        self.active = False  # an edit since the last heartbeat check
        self.checked_at = time.monotonic()

    def put(self, message: dict[str, Any]) -> None:
        """Queue a message made here (on this editor's loop)."""
        self.queue.put_nowait((message, None))

    def deliver(self, message: dict[str, Any], text: str) -> None:
        """From the broker, with the text it carried (the message as sent to clients).

        Usually on this editor's event loop; from another thread in tests (one loop per
        test client), where it must go through the loop's thread-safe door."""
        if message.get("client") == self.client_id and message.get("type") != "op":
            return  # our own presence or leave
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if here:
            if message.get("type") == "op" and int(message["rev"]) <= self.sent_rev:
                return  # already sent (the author's own update, acknowledged inline)
            self.queue.put_nowait((message, text))
        else:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (message, text))

    async def _send(self, message: dict[str, Any], text: str | None = None) -> None:
        await self.websocket.send_text(_dump(message) if text is None else text)

    async def _fill(self, upto: int) -> None:
        for record in await self.gate.updates_between(self.note, self.sent_rev, upto):
            await self._send(record)
            self.sent_rev = int(record["rev"])

    async def send_now(self, message: dict[str, Any], text: str) -> None:
        """Send at once, from the caller's task, when nothing is queued or being sent
        (the usual case for the author's acknowledgement: no hop through the sender
        task); else queue it behind the rest. Order is the same either way."""
        if self.queue.empty() and not self.sending.locked():
            async with self.sending:
                await self._one(message, text)
        else:
            self.queue.put_nowait((message, text))

    async def sender(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            # No await between taking the item and holding the lock (a free lock is
            # taken without yielding), so `send_now` never overtakes it.
            async with self.sending:
                await self._one(*item)

    async def _one(self, message: dict[str, Any], text: str | None) -> None:
        """Send one message in revision order (fill gaps from the gate, drop duplicates)."""
        kind = message.get("type")
        if kind == "ack":
            if int(message["rev"]) > self.sent_rev:
                await self._fill(int(message["rev"]))  # the client needs those first
        elif kind in ("op", "_upto"):
            rev = int(message["rev"])
            if rev <= self.sent_rev:
                return  # already sent (a duplicate from the broker or a resend)
            if kind == "_upto" or rev > self.sent_rev + 1:
                await self._fill(rev)  # a gap: the database is the truth
                return
            self.sent_rev = rev
        await self._send(message, text)


class NotesService:
    """One per process: the notes endpoint, its channels on the broker, and presence."""

    def __init__(self, signaling: SignalingService, gate: NoteGate) -> None:
        self.signaling = signaling
        self.gate = gate
        self.editors: dict[int, set[Editor]] = {}
        self._published: tuple[str, dict[str, Any]] | None = None

    def _broker(self) -> Broker:
        return self.signaling.hub.broker

    @staticmethod
    def _channel(note: NoteAccess) -> str:
        return f"notes:{note.note_id}"

    async def publish(self, note: NoteAccess, message: dict[str, Any], text: str = "") -> None:
        text = text or _dump(message)
        # An in-process broker hands this very string straight back to `_receive`:
        # the message is then not parsed again.
        self._published = (text, message)
        try:
            await self._broker().publish(self._channel(note), text)
        finally:
            self._published = None

    async def _receive(self, note_id: int, text: str) -> None:
        published = self._published
        if published is not None and published[0] is text:
            message = published[1]
        else:
            message = json.loads(text)
        for editor in list(self.editors.get(note_id, ())):
            editor.deliver(message, text)

    async def _open(self, editor: Editor) -> None:
        note = editor.note
        group = self.editors.setdefault(note.note_id, set())
        group.add(editor)
        if len(group) == 1:

            async def handler(text: str) -> None:
                await self._receive(note.note_id, text)

            await self._broker().subscribe(self._channel(note), handler)

    async def _close(self, editor: Editor) -> None:
        note = editor.note
        group = self.editors.get(note.note_id)
        if group is None:
            return
        group.discard(editor)
        if not group:
            del self.editors[note.note_id]
            await self._broker().unsubscribe(self._channel(note))

    # --- presence ----------------------------------------------------------------------
    async def _here(self, editor: Editor, extra: dict[str, Any]) -> dict[str, Any]:
        record = {"type": "presence", "client": editor.client_id, "user": editor.identity.name}
        await self._broker().presence_put(
            self._channel(editor.note), editor.client_id, record, PRESENCE_TTL
        )
        return {**record, **extra}

    async def _sweep(self, editor: Editor) -> None:
        """Announce editors whose presence expired (their process died): they are gone."""
        room = self._channel(editor.note)
        now = time.time()
        for client_id, (_, expires) in (await self._broker().presence_all(room)).items():
            if expires < now and await self._broker().presence_remove(room, client_id):
                await self.publish(editor.note, {"type": "leave", "client": client_id})

    async def _others(self, editor: Editor) -> None:
        """Tell a joining editor who is already here (live entries only)."""
        now = time.time()
        entries = await self._broker().presence_all(self._channel(editor.note))
        for client_id, (record, expires) in entries.items():
            if client_id != editor.client_id and expires >= now:
                editor.put(dict(record))

    # --- the endpoint ------------------------------------------------------------------
    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        service = self.signaling
        if not service.running:  # not started (yet, or any more)
            await service.refuse(websocket, 1013)
            return
        config = service.config
        socket = claim(websocket)
        reader = FrameReader(socket, config, parse=parse_note_frame, max_bytes=MAX_NOTE_FRAME)
        service.sockets.add(websocket)
        editor: Editor | None = None
        sender: asyncio.Task[None] | None = None
        close: Closed | None = None
        try:
            if websocket.headers.get("origin") is None or not service.origin_ok(websocket):
                raise Closed(REFUSED)
            identity = await service.authenticate(websocket, None)
            if identity is None or identity.user_id is None:
                raise Closed(REFUSED)
            # Known by its login session, so a session that ends closes this socket too.
            service._track(websocket, identity)
            ip = websocket.client.host if websocket.client else ""
            note = await self.gate.open_note(identity, str(websocket.path_params["public_id"]), ip)
            if note is None:
                raise Closed(REFUSED)
            try:
                join = await reader.next(config.join_timeout_seconds)
            except Closed as closed:
                raise Closed(BAD_MESSAGE if closed.code == 4408 else closed.code) from None
            client_id = str(join.get("client", ""))
            if join.get("type") != "join" or not CLIENT_ID.match(client_id):
                raise Closed(BAD_MESSAGE, "first frame must be join")
            editor = Editor(socket, self.gate, note, identity, client_id)
            # Subscribe first, then read: an update committed in between arrives either
            # way, and the sender drops what it has already sent.
            await self._open(editor)
            snapshot = await self.gate.snapshot(note)
            rev = join.get("rev")
            if (
                isinstance(rev, int)
                and not isinstance(rev, bool)
                and snapshot["oldest"] <= rev <= snapshot["rev"]
            ):
                editor.sent_rev = rev  # a rejoin: send only what was missed
                editor.put({"type": "_upto", "rev": snapshot["rev"]})
            else:
                editor.sent_rev = snapshot["rev"]
                await editor._send(
                    {"type": "snapshot", "rev": snapshot["rev"], "text": snapshot["text"]}
                )
            editor.frozen = bool(snapshot["frozen"])
            await self._others(editor)
            editor.put(
                {
                    "type": "ready",
                    "frozen": editor.frozen,
                    "you": identity.name,
                    "rev": snapshot["rev"],
                }
            )
            sender = asyncio.create_task(editor.sender(), name="note-sender")
            await self.publish(note, await self._here(editor, {"joined": True}))
            await self._serve(reader, editor, websocket)
        except Closed as closed:
            close = closed
        except WebSocketDisconnect:
            close = None
        except Exception:
            # Connection guard: the gate (database) or a bug failed this one editor;
            # it closes with 1011 (the client reconnects) and `finally` cleans up.
            log.exception("notes connection failed")
            close = Closed(1011, "internal error")
        finally:
            if service._untrack(websocket):
                close = None  # closed already: its login session ended
            if editor is not None:
                await self._leave(editor)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, *SOCKET_GONE):
                    await sender
            if close is not None and close.code is not None:
                await service.refuse(websocket, close.code)

    async def _leave(self, editor: Editor) -> None:
        try:
            await self._close(editor)
            room = self._channel(editor.note)
            if await self._broker().presence_remove(room, editor.client_id):
                await self.publish(editor.note, {"type": "leave", "client": editor.client_id})
        except Exception:
            # Broad on purpose: we are closing, perhaps because of an error that must
            # not be replaced by this one; the entry expires by itself within seconds.
            log.warning("notes: could not announce a leave (note %s)", editor.note.note_id)

    async def _serve(
        self, reader: FrameReader[dict[str, Any]], editor: Editor, ws: WebSocket
    ) -> None:
        cookie = ws.cookies.get("dari_session")
        while True:
            frame = await reader.next(HEARTBEAT_WAIT)
            kind = frame["type"]
            if kind == "ping":
                editor.put({"type": "pong"})
                if time.monotonic() - editor.checked_at < RECHECK_SECONDS:
                    continue
                editor.checked_at = time.monotonic()
                active, editor.active = editor.active, False
                verdict = await self.gate.recheck(cookie, editor.note, active)
                if verdict == "ended":
                    raise Closed(REFUSED)  # logged out, expired, or no longer a participant
                if verdict == "frozen" and not editor.frozen:
                    # The report was signed (perhaps by another process): read-only now.
                    editor.frozen = True
                    editor.put({"type": "error", "code": "note_frozen"})
                await self._broker().presence_touch(
                    self._channel(editor.note), [editor.client_id], PRESENCE_TTL
                )
                await self._sweep(editor)
            elif kind == "presence":
                extra: dict[str, Any] = {"typing": frame.get("typing") is True}
                cursor = frame.get("cursor")
                if (
                    isinstance(cursor, list)
                    and len(cursor) == 2
                    and all(isinstance(c, int) and not isinstance(c, bool) for c in cursor)
                    and isinstance(frame.get("rev"), int)
                ):
                    extra["cursor"] = cursor
                    extra["rev"] = frame["rev"]
                    extra["sync"] = frame.get("sync") is True
                await self.publish(editor.note, await self._here(editor, extra))
            elif kind == "op":
                try:
                    record, author_only = await self.gate.apply(
                        editor.note, editor.identity, editor.client_id, frame
                    )
                except NoteRefusal as refusal:
                    editor.put({"type": "error", "code": refusal.code, "message": refusal.message})
                    continue
                editor.active = True
                # The author's acknowledgement first, as soon as the update is committed:
                # it does not wait for the broker (a round trip to Redis). Its copy from
                # the broker is then dropped by revision, like any duplicate.
                text = _dump(record)
                try:
                    await editor.send_now(record, text)
                except SOCKET_GONE:
                    raise Closed(None) from None  # the editor left; the write stands
                if not author_only:
                    await self.publish(editor.note, record, text)
            else:  # a second join
                await reader.error("unknown_message", "already joined")
