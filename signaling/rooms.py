"""The Hub of one process: joining, resuming and leaving rooms, and a joined peer's frames.

A process keeps its own connections (signaling/peers.py) and shares the rest
through the broker: presence entries (signaling/presence.py) and one channel per
room (signaling/relay.py) carrying typed messages (signaling/bus.py) that every
process serving the room delivers to its own peers. Guests wait in the lobby
(signaling/lobby.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signaling import bus
from signaling import protocol as p
from signaling.broker import Broker
from signaling.bus import PeerRecord
from signaling.connection import Connection
from signaling.gate import Admission, Gatekeeper, Identity, QualityReport, SignalingConfig
from signaling.links import Links
from signaling.lobby import Lobby
from signaling.peers import LocalPeer, LocalPeers, peer_info
from signaling.presence import Presence
from signaling.relay import Control, RoomChannel
from signaling.tokens import hash_resume, resume_token

__all__ = ["Hub", "Refused"]

log = logging.getLogger("dari.signaling.rooms")


class Refused(Exception):
    """The join is refused; the socket is closed with `code` (after an error frame if any)."""

    def __init__(self, code: int, error: str | None = None, message: str = "") -> None:
        super().__init__(message or error or str(code))
        self.code = code
        self.error = error
        self.message = message


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Hub:
    broker: Broker
    gate: Gatekeeper
    config: SignalingConfig = field(default_factory=SignalingConfig)
    node_id: str = field(default_factory=lambda: secrets.token_hex(6))
    local: LocalPeers = field(default_factory=LocalPeers)
    presence: Presence = field(init=False)
    channel: RoomChannel = field(init=False)
    lobby: Lobby = field(init=False)
    links: Links | None = field(init=False, default=None)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _refresher: asyncio.Task[None] | None = None
    _heartbeat: asyncio.Task[None] | None = None
    _closing: bool = False
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _record_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.presence = Presence(
            self.broker,
            self.config,
            self.local,
            self._ghost,
            node_id=self.node_id,
            on_away=self._away_elsewhere,
            on_back=self._back,
            on_restored=self._restored,
        )
        self.channel = RoomChannel(
            self.broker, self.local, self.presence, self.node_id, self._control
        )
        self.lobby = Lobby(self, self.local, self.presence, self.channel, self.config)
        if Links.wanted(self.broker, self.config):
            # Frames for one peer on another process go straight there (links.py); the
            # heartbeat check tells the links which processes beat, and where.
            self.links = Links(self.broker, self.node_id, self.config, self.channel.deliver_linked)
            self.channel.links = self.links
            self.presence.on_nodes = self.links.seen
            self.presence.also_check = self.links.nodes

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.connect()
        if self.links is not None:
            await self.links.start()
            self.presence.address = self.links.address
        await self.broker.node_beat(
            self.node_id, self.config.node_ttl_seconds, self.presence.address
        )
        self._refresher = asyncio.create_task(self.presence.refresh_loop(), name="presence-refresh")
        self._heartbeat = asyncio.create_task(self.presence.heartbeat_loop(), name="node-heartbeat")

    async def stop(self) -> None:
        """Close every connection (1001) and release the broker.

        With a shared broker the peers are handed over, not ended: they are marked away
        and resume through another process (or this one restarted) within their window,
        so a rolling restart keeps the calls. Alone (memory://) nobody could take them
        over: a clean stop is a leave, and the others hear it at once."""
        self._closing = True
        for task in (self._refresher, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        hand_over = self.broker.shared
        for peer in self.local.all():
            if hand_over and peer.admitted and not peer.gone:
                await self._hand_over(peer)
                continue
            if peer.conn is not None:
                await peer.conn.close(1001, "server shutting down")
            await self.finish(peer, "gone")
        if hand_over:
            with contextlib.suppress(*self.broker.errors):
                await self.broker.node_gone(self.node_id)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self.links is not None:
            await self.links.stop()
        await self.broker.disconnect()

    async def _hand_over(self, peer: LocalPeer) -> None:
        """A stopping process lets go of a peer without ending it: away, then closed."""
        conn, peer.conn = peer.conn, None
        peer.gone = True  # for this process only: its entry stays, marked away
        announced = peer.expiry_task is not None  # already away (its socket had dropped)
        if peer.expiry_task is not None:
            peer.expiry_task.cancel()
            peer.expiry_task = None
        try:
            await self.presence.put(peer, self.config.resume_seconds, away=True)
            if not announced:
                await self.channel.publish(peer.room, bus.Away(peer_id=peer.peer_id))
        except self.broker.errors:
            log.warning("room %s: hand-over of a peer failed: broker unreachable", peer.room)
        await self._forget(peer)
        if conn is not None:
            await conn.close(1001, "server shutting down")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record(self, room: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run a call-record hook in the background, in order per room (join before leave)."""
        lock = self._record_locks.setdefault(room, asyncio.Lock())

        async def run() -> None:
            try:
                async with lock:
                    await coro
            finally:
                if not lock.locked() and not self.local.serves(room):
                    self._record_locks.pop(room, None)

        self._spawn(run())

    # --- joining ---------------------------------------------------------------------

    def _lock(self, room: str) -> asyncio.Lock:
        lock = self._locks.get(room)
        if lock is None:
            lock = self._locks[room] = asyncio.Lock()
        return lock

    async def join(self, conn: Connection, identity: Identity | None, frame: p.Join) -> LocalPeer:
        """Admit, queue in the lobby, resume or refuse (raises Refused)."""
        room = frame.room
        if frame.resume_token:
            async with self._lock(room):
                entries = await self.presence.live(room)
                resumed = await self._resume(conn, identity, frame, entries)
            if resumed is not None:
                return resumed
        if identity is None:
            raise Refused(4403)
        if identity.room is not None and identity.room != room:
            raise Refused(4403)
        admission = await self.gate.admission(identity, room)
        if admission == Admission.DENY:
            raise Refused(4403)
        # Joins to one room are serialised in this process; across processes the
        # capacity is checked again after our entry is written (below).
        async with self._lock(room):
            return await self._enter(conn, identity, frame, admission)

    async def _enter(
        self, conn: Connection, identity: Identity, frame: p.Join, admission: Admission
    ) -> LocalPeer:
        room = frame.room
        entries = await self.presence.live(room)
        # A second tab of the same user replaces the first.
        replaced = [
            record
            for record in entries.values()
            if record.key == identity.key and identity.kind == "user"
        ]
        for record in replaced:
            entries.pop(record.peer_id, None)
            if await self.presence.remove(room, record.peer_id):
                await self.channel.publish(room, bus.Replaced(to=record.peer_id, code=4409))
                await self._announce_left(room, record.peer_id, "replaced", admitted=True)
        full = Refused(4429, "room_full", f"a call holds at most {self.config.max_peers} peers")
        admitted = [r for r in entries.values() if r.admitted]
        if admission == Admission.ALLOW and len(admitted) >= self.config.max_peers:
            raise full
        token, token_hash = resume_token()
        peer = LocalPeer(
            peer_id="p_" + secrets.token_urlsafe(9),
            room=room,
            identity=identity,
            can_rollback=frame.can_rollback,
            seq=await self.broker.next_seq(room),
            conn=conn,
            admitted=admission == Admission.ALLOW,
            resume_hash=token_hash,
            held=[] if admission == Admission.ALLOW else None,
        )
        await self._attach(peer)
        if not peer.admitted:
            await self.lobby.wait(peer)
            return peer
        after = await self.presence.live(room)
        order = sorted((r for r in after.values() if r.admitted), key=lambda r: r.seq)
        if peer.peer_id not in {r.peer_id for r in order[: self.config.max_peers]}:
            # Another process admitted someone at the same moment: the later one yields.
            await self.presence.remove(room, peer.peer_id)
            peer.gone = True
            await self._forget(peer)
            raise full
        # Read after our subscription: whoever announced before it is listed here,
        # whoever announced after it reaches us (held until the welcome, de-duplicated).
        await self.welcome(peer, token, after, resumed=False)
        await self.announce_joined(peer)
        return peer

    async def _resume(
        self,
        conn: Connection,
        identity: Identity | None,
        frame: p.Join,
        entries: dict[str, PeerRecord],
    ) -> LocalPeer | None:
        wanted = hash_resume(frame.resume_token or "")
        record = next((r for r in entries.values() if r.resume == wanted), None)
        if record is None or not record.admitted:
            return None
        # The resume token is a secret given to that peer only, and works only with
        # the same person's credentials (a stolen token alone opens nothing): the
        # joining identity must be that peer's, and a join token must be for this room.
        if identity is None or identity.key != record.key:
            return None
        if identity.room is not None and identity.room != frame.room:
            return None
        room = frame.room
        peer = self.local.get(record.peer_id)
        if peer is not None:
            if peer.expiry_task is not None:
                peer.expiry_task.cancel()
                peer.expiry_task = None
            await peer.let_go(4409, "resumed elsewhere")
        else:
            # Held by another process (or by one that died): take it over.
            await self.channel.publish(room, bus.Adopted(peer_id=record.peer_id))
            peer = LocalPeer(
                peer_id=record.peer_id,
                room=room,
                identity=identity or Identity(key=record.key, name=record.name, kind=record.kind),
                can_rollback=record.can_rollback,
                seq=record.seq,
                conn=None,
                admitted=True,
            )
        peer.conn = conn
        peer.held = []
        token, peer.resume_hash = resume_token()
        await self._attach(peer)
        entries.pop(peer.peer_id, None)
        await self.welcome(peer, token, entries, resumed=True)
        await self.channel.publish(room, bus.Reconnected(from_=peer.peer_id, except_=peer.peer_id))
        return peer

    async def _attach(self, peer: LocalPeer) -> None:
        if self.local.add(peer):
            await self.channel.open(peer.room)
        await self.presence.put(peer, self.config.presence_ttl_seconds)

    async def welcome(
        self, peer: LocalPeer, token: str, entries: dict[str, PeerRecord], *, resumed: bool
    ) -> None:
        """The welcome frame: who is here and this peer's roles towards each."""
        me = peer.record()
        others = sorted(
            (r for r in entries.values() if r.admitted and r.peer_id != peer.peer_id),
            key=lambda r: r.seq,
        )
        infos = [peer_info(me, other) for other in others]
        first = infos[0] if infos else None
        await peer.send(
            p.Welcome(
                peer_id=peer.peer_id,
                room=peer.room,
                resumed=resumed,
                # Alone: newcomers will usually be polite towards us, so we are not.
                polite=first.polite if first else False,
                can_offer=first.offer != "peer" if first else True,
                peers=infos,
                ice_servers=await self.gate.ice_servers(peer.identity),
                resume_token=token,
                resume_seconds=int(self.config.resume_seconds),
                heartbeat_s=int(self.config.heartbeat_seconds),
                max_peers=self.config.max_peers,
            ),
        )
        # What came while joining, less the arrivals the welcome has just listed.
        held, peer.held = peer.held or [], None
        listed = {info.peer_id for info in infos}
        for frame in held:
            if isinstance(frame, str):
                await peer.send_dumped(frame)
            elif not (isinstance(frame, p.PeerJoined) and frame.peer.peer_id in listed):
                await peer.send(frame)
        await self.lobby.knock_again(peer, entries)

    async def announce_joined(self, peer: LocalPeer) -> None:
        """The room hears of a newly admitted peer; the call record too."""
        await self.channel.publish(peer.room, bus.Joined(record=peer.record()))
        self._record(peer.room, self.gate.call_joined(peer.room, peer.peer_id, peer.identity))

    # --- frames from a joined peer ----------------------------------------------------

    async def handle(self, peer: LocalPeer, frame: p.ClientFrame) -> None:
        """One validated frame from a peer's connection."""
        if isinstance(frame, p.Ping):
            await peer.send(p.Pong(ts=frame.ts))
            return
        if isinstance(frame, p.Leave):
            await self.leave(peer, "left")
            return
        if not peer.admitted:
            await peer.error("not_allowed", "wait until a participant admits you")
            return
        relay = self.channel.relay
        match frame:
            case p.Offer(to=to, sdp=sdp) if to is not None:
                await relay(peer, to, p.RelayedOffer(from_=peer.peer_id, sdp=sdp))
            case p.Answer(to=to, sdp=sdp) if to is not None:
                await relay(peer, to, p.RelayedAnswer(from_=peer.peer_id, sdp=sdp))
            case p.Candidate(to=to, candidate=candidate):
                await relay(peer, to, p.RelayedCandidate(from_=peer.peer_id, candidate=candidate))
            case p.EndOfCandidates(to=to):
                await relay(peer, to, p.RelayedEndOfCandidates(from_=peer.peer_id))
            case p.IceRestartRequest(to=to):
                await relay(peer, to, p.IceRestart(from_=peer.peer_id, reason="requested"))
            case p.ChatSend(text=text):
                chat = p.ChatMessage(
                    from_=peer.peer_id, name=peer.identity.name, text=text, at=_now_iso()
                )
                await self.channel.publish(peer.room, bus.Chat(frame=chat))
            case p.Admit() | p.Deny():
                await self.lobby.answer(peer, frame)
            case p.Stats(bitrate_kbps=bitrate, rtt_ms=rtt, loss_pct=loss):
                self._record(
                    peer.room,
                    self.gate.call_quality(
                        peer.room, peer.peer_id, QualityReport(bitrate, rtt, loss)
                    ),
                )
            case _:
                await peer.error("bad_frame", f"{frame.type!r} is not used in a room")

    async def _control(self, room: str, message: Control) -> None:
        """A room message that acts on one of this process's peers."""
        match message:
            case bus.Replaced(to=peer_id, code=code):
                target = self.local.get(peer_id)
                if target is not None and target.room == room:
                    target.gone = True  # presence was already removed by the replacer
                    await self._forget(target)
                    await target.let_go(code, "replaced by another tab")
            case bus.Adopted(peer_id=peer_id, node=node):
                target = self.local.get(peer_id)
                if target is not None and node != self.node_id:
                    # The peer came back through another process: let go of it here.
                    target.gone = True
                    if target.expiry_task is not None:
                        target.expiry_task.cancel()
                    await self._forget(target)
                    await target.let_go(4409, "resumed elsewhere")
            case bus.Admitted() | bus.Denied():
                await self.lobby.carry_out(room, message)

    # --- leaving ---------------------------------------------------------------------

    async def disconnected(self, peer: LocalPeer, conn: Connection) -> None:
        """The socket ended without a leave: keep the slot for resume_seconds."""
        if peer.conn is not conn or peer.gone:
            return  # replaced or resumed meanwhile: nothing to do
        peer.conn = None
        if not peer.admitted or (self._closing and not self.broker.shared):
            await self.finish(peer, "left")
            return
        if self._closing:
            await self._hand_over(peer)
            return
        await self.presence.put(peer, self.config.resume_seconds, away=True)
        # The room hears it at once: the page shows "reconnecting" for this peer and
        # keeps its media; `peer-left` only if the window ends without a resume.
        await self.channel.publish(peer.room, bus.Away(peer_id=peer.peer_id))
        peer.expiry_task = asyncio.create_task(self._expire_later(peer))

    async def _expire_later(self, peer: LocalPeer) -> None:
        await asyncio.sleep(self.config.resume_seconds)
        if peer.conn is None and not peer.gone:
            peer.expiry_task = None
            await self.finish(peer, "timeout")

    async def leave(self, peer: LocalPeer, reason: p.LeaveReason, *, close: bool = True) -> None:
        """A clean leave: the room hears it at once."""
        conn = peer.conn
        peer.conn = None
        await self.finish(peer, reason)
        if conn is not None and close:
            await conn.close(1000, "left")

    async def finish(self, peer: LocalPeer, reason: p.LeaveReason) -> None:
        """The peer is gone for good: local state dropped, presence removed, the room told."""
        if peer.gone:
            return
        peer.gone = True
        if peer.expiry_task is not None:
            peer.expiry_task.cancel()
            peer.expiry_task = None
        await self._forget(peer)
        if await self.presence.remove(peer.room, peer.peer_id):
            await self._announce_left(peer.room, peer.peer_id, reason, admitted=peer.admitted)

    async def _forget(self, peer: LocalPeer) -> None:
        """Drop local state (not presence)."""
        if self.local.remove(peer):
            lock = self._locks.get(peer.room)
            if lock is not None and not lock.locked():
                del self._locks[peer.room]
            await self.channel.close(peer.room)

    async def _ghost(self, room: str, record: PeerRecord) -> None:
        """A peer whose entry expired (removed by us): the room hears it. An away peer's
        resume window has ended (a timeout, as on its own process); otherwise its process
        stopped refreshing it."""
        reason: p.LeaveReason = "timeout" if record.away else "gone"
        await self._announce_left(room, record.peer_id, reason, admitted=record.admitted)

    async def _away_elsewhere(self, room: str, record: PeerRecord) -> None:
        """A dead process's peer, marked away by us: the room hears it (once)."""
        log.info("room %s: peer %s away (process %s stopped)", room, record.peer_id, record.node)
        await self.channel.publish(room, bus.Away(peer_id=record.peer_id))

    async def _back(self, peer: LocalPeer) -> None:
        """Our peer was taken for away while we stalled: rewrite its entry, tell the room."""
        await self.presence.put(peer, self.config.presence_ttl_seconds)
        await self.channel.publish(
            peer.room, bus.Reconnected(from_=peer.peer_id, except_=peer.peer_id)
        )

    async def _restored(self, peer: LocalPeer) -> None:
        """Our connected peer's entry was swept by another process while we stalled (the
        room heard it left): its entry is back, the room hears it joined (or knocked)."""
        if peer.admitted:
            await self.announce_joined(peer)
        else:
            await self.channel.publish(peer.room, bus.Knocked(record=peer.record()))

    async def _announce_left(
        self, room: str, peer_id: str, reason: p.LeaveReason, *, admitted: bool
    ) -> None:
        """Only the caller that removed the presence entry announces (once, across processes)."""
        await self.channel.publish(
            room, bus.Left(peer_id=peer_id, reason=reason, lobby=not admitted)
        )
        if admitted:
            self._record(room, self._call_left(room, peer_id))

    async def _call_left(self, room: str, peer_id: str) -> None:
        entries = await self.presence.live(room)
        empty = not any(r.admitted for r in entries.values())
        await self.gate.call_left(room, peer_id, empty)
