"""Rooms, presence and relay: the Hub of one process.

A process keeps its own connections (`LocalPeer`) and shares the rest through the
broker: presence entries (one per peer, with an expiry its process refreshes) and
one channel per room carrying envelopes that every process serving the room
delivers to its own peers. The rule "whoever removes a presence entry announces
the leave" makes leaves idempotent across processes and sweepers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from signaling import protocol as p
from signaling.broker import Broker
from signaling.gate import Admission, Gatekeeper, Identity, QualityReport, SignalingConfig
from signaling.tokens import hash_resume, resume_token

log = logging.getLogger("dari.signaling.rooms")


class Connection(Protocol):
    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Refused(Exception):
    """The join is refused; the socket is closed with `code` (after an error frame if any)."""

    def __init__(self, code: int, error: str | None = None, message: str = "") -> None:
        super().__init__(message or error or str(code))
        self.code = code
        self.error = error
        self.message = message


@dataclass
class LocalPeer:
    peer_id: str
    room: str
    identity: Identity
    can_rollback: bool
    seq: int
    conn: Connection | None
    admitted: bool
    resume_hash: str = ""
    expiry_task: asyncio.Task[None] | None = None
    gone: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "key": self.identity.key,
            "name": self.identity.name,
            "kind": self.identity.kind,
            "can_rollback": self.can_rollback,
            "seq": self.seq,
            "admitted": self.admitted,
            "resume": self.resume_hash,
        }


def peer_info(me: dict[str, Any], other: dict[str, Any]) -> p.PeerInfo:
    """`other` as seen by `me`, with my roles towards it."""
    polite, offer = p.pair_roles(
        me_first=int(me["seq"]) < int(other["seq"]),
        me_can_rollback=bool(me["can_rollback"]),
        other_can_rollback=bool(other["can_rollback"]),
    )
    return p.PeerInfo(
        peer_id=other["peer_id"], name=other["name"], kind=other["kind"], polite=polite, offer=offer
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Hub:
    broker: Broker
    gate: Gatekeeper
    config: SignalingConfig = field(default_factory=SignalingConfig)
    peers: dict[str, LocalPeer] = field(default_factory=dict)
    rooms: dict[str, set[str]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _refresher: asyncio.Task[None] | None = None
    _closing: bool = False
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    node_id: str = field(default_factory=lambda: secrets.token_hex(6))

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.connect()
        self._refresher = asyncio.create_task(self._refresh_loop(), name="presence-refresh")

    async def stop(self) -> None:
        """Close every connection (1001) and release the broker."""
        self._closing = True
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for peer in list(self.peers.values()):
            if peer.conn is not None:
                with contextlib.suppress(Exception):
                    await peer.conn.close(1001, "server shutting down")
            # A clean stop is a leave, not a ghost: the others hear it at once.
            await self._finish(peer, "gone")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await self.broker.disconnect()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
                entries = await self._live_entries(room)
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
        entries = await self._live_entries(room)
        # A second tab of the same user replaces the first.
        replaced = [
            record
            for record in entries.values()
            if record["key"] == identity.key and identity.kind == "user"
        ]
        for record in replaced:
            entries.pop(record["peer_id"], None)
            if await self.broker.presence_remove(room, record["peer_id"]):
                await self._publish(room, {"k": "close", "to": record["peer_id"], "code": 4409})
                await self._publish(
                    room, {"k": "left", "peer_id": record["peer_id"], "reason": "replaced"}
                )
                self._spawn(self._call_left(room, record["peer_id"]))
        full = Refused(4429, "room_full", f"a call holds at most {self.config.max_peers} peers")
        admitted = [r for r in entries.values() if r["admitted"]]
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
        )
        await self._attach(peer)
        if peer.admitted:
            after = await self._live_entries(room)
            order = sorted((r for r in after.values() if r["admitted"]), key=lambda r: r["seq"])
            if peer.peer_id not in {r["peer_id"] for r in order[: self.config.max_peers]}:
                # Another process admitted someone at the same moment: the later one yields.
                await self.broker.presence_remove(room, peer.peer_id)
                peer.gone = True
                await self._forget(peer)
                raise full
            await self._welcome(peer, token, entries, resumed=False)
            await self._publish(room, {"k": "joined", "record": peer.record()})
            self._spawn(self.gate.call_joined(room, peer.peer_id, identity))
        else:
            await self._send(peer, p.Lobby())
            await self._publish(room, {"k": "knock", "record": peer.record()})
        return peer

    async def _resume(
        self,
        conn: Connection,
        identity: Identity | None,
        frame: p.Join,
        entries: dict[str, dict[str, Any]],
    ) -> LocalPeer | None:
        wanted = hash_resume(frame.resume_token or "")
        record = next((r for r in entries.values() if r.get("resume") == wanted), None)
        if record is None or not record["admitted"]:
            return None
        # The resume token is a secret given to that peer only; a presented
        # identity must still be the same person.
        if identity is not None and identity.key != record["key"]:
            return None
        room = frame.room
        peer = self.peers.get(record["peer_id"])
        if peer is not None:
            if peer.expiry_task is not None:
                peer.expiry_task.cancel()
                peer.expiry_task = None
            if peer.conn is not None:
                old = peer.conn
                peer.conn = None
                with contextlib.suppress(Exception):
                    await old.close(4409, "resumed elsewhere")
        else:
            # Held by another process (or by one that died): take it over.
            await self._publish(room, {"k": "adopted", "peer_id": record["peer_id"]})
            peer = LocalPeer(
                peer_id=record["peer_id"],
                room=room,
                identity=identity
                or Identity(key=record["key"], name=record["name"], kind=record["kind"]),
                can_rollback=bool(record["can_rollback"]),
                seq=int(record["seq"]),
                conn=None,
                admitted=True,
            )
        peer.conn = conn
        token, peer.resume_hash = resume_token()
        await self._attach(peer)
        entries.pop(peer.peer_id, None)
        await self._welcome(peer, token, entries, resumed=True)
        await self._publish(room, {"k": "restart", "from": peer.peer_id, "except": peer.peer_id})
        return peer

    async def _attach(self, peer: LocalPeer) -> None:
        first_here = peer.room not in self.rooms
        self.peers[peer.peer_id] = peer
        self.rooms.setdefault(peer.room, set()).add(peer.peer_id)
        if first_here:
            await self.broker.subscribe(_channel(peer.room), self._handler(peer.room))
        await self.broker.presence_put(
            peer.room, peer.peer_id, peer.record(), self.config.presence_ttl_seconds
        )

    async def _welcome(
        self, peer: LocalPeer, token: str, entries: dict[str, dict[str, Any]], *, resumed: bool
    ) -> None:
        me = peer.record()
        others = sorted(
            (r for r in entries.values() if r["admitted"] and r["peer_id"] != peer.peer_id),
            key=lambda r: int(r["seq"]),
        )
        infos = [peer_info(me, other) for other in others]
        first = infos[0] if infos else None
        await self._send(
            peer,
            p.Welcome(
                peer_id=peer.peer_id,
                room=peer.room,
                resumed=resumed,
                polite=first.polite if first else True,
                can_offer=first.offer != "peer" if first else True,
                peers=infos,
                ice_servers=await self.gate.ice_servers(peer.identity),
                resume_token=token,
                resume_seconds=int(self.config.resume_seconds),
                heartbeat_s=int(self.config.heartbeat_seconds),
                max_peers=self.config.max_peers,
            ),
        )
        # Guests waiting in the lobby knock again for whoever can now admit them.
        if peer.identity.kind == "user":
            for record in entries.values():
                if not record["admitted"]:
                    await self._send(peer, p.Knock(peer=peer_info(me, record)))

    # --- frames from a joined peer ----------------------------------------------------

    async def handle(self, peer: LocalPeer, frame: p.ClientFrame) -> None:
        """One validated frame from a peer's connection."""
        if isinstance(frame, p.Ping):
            await self._send(peer, p.Pong(ts=frame.ts))
            return
        if isinstance(frame, p.Leave):
            await self.leave(peer, "left")
            return
        if not peer.admitted:
            await self._error(peer, "not_allowed", "wait until a participant admits you")
            return
        match frame:
            case p.Offer(to=to, sdp=sdp) if to is not None:
                await self._relay(peer, to, p.RelayedOffer(from_=peer.peer_id, sdp=sdp))
            case p.Answer(to=to, sdp=sdp) if to is not None:
                await self._relay(peer, to, p.RelayedAnswer(from_=peer.peer_id, sdp=sdp))
            case p.Candidate(to=to, candidate=candidate):
                await self._relay(
                    peer, to, p.RelayedCandidate(from_=peer.peer_id, candidate=candidate)
                )
            case p.EndOfCandidates(to=to):
                await self._relay(peer, to, p.RelayedEndOfCandidates(from_=peer.peer_id))
            case p.IceRestartRequest(to=to):
                await self._relay(peer, to, p.IceRestart(from_=peer.peer_id, reason="requested"))
            case p.ChatSend(text=text):
                chat = p.ChatMessage(
                    from_=peer.peer_id, name=peer.identity.name, text=text, at=_now_iso()
                )
                await self._publish(peer.room, {"k": "all", "frame": chat.dump()})
            case p.Admit(peer=guest) | p.Deny(peer=guest):
                if peer.identity.kind != "user":
                    await self._error(peer, "not_allowed", "only participants admit guests")
                    return
                entries = await self._live_entries(peer.room)
                if guest not in entries or entries[guest]["admitted"]:
                    await self._error(peer, "unknown_peer", "no such guest waiting")
                    return
                kind = "admit" if isinstance(frame, p.Admit) else "deny"
                await self._publish(peer.room, {"k": kind, "peer_id": guest})
            case p.Stats(bitrate_kbps=bitrate, rtt_ms=rtt, loss_pct=loss):
                self._spawn(
                    self.gate.call_quality(
                        peer.room, peer.peer_id, QualityReport(bitrate, rtt, loss)
                    )
                )
            case _:
                await self._error(peer, "bad_frame", f"{frame.type!r} is not used in a room")

    async def _relay(self, sender: LocalPeer, to: str, frame: p.Frame) -> None:
        target = self.peers.get(to)
        if target is not None:
            # Fast path: the peer is on this process; the room must still match.
            if target.room != sender.room or not target.admitted:
                await self._error(sender, "unknown_peer", "no such peer in this room")
            elif target.conn is not None:
                await self._send(target, frame)
            return
        entries = await self._live_entries(sender.room)
        record = entries.get(to)
        if record is None or not record["admitted"]:
            await self._error(sender, "unknown_peer", "no such peer in this room")
            return
        await self._publish(sender.room, {"k": "to", "to": to, "frame": frame.dump()})

    # --- leaving ---------------------------------------------------------------------

    async def disconnected(self, peer: LocalPeer, conn: Connection) -> None:
        """The socket ended without a leave: keep the slot for resume_seconds."""
        if peer.conn is not conn or peer.gone:
            return  # replaced or resumed meanwhile: nothing to do
        peer.conn = None
        if not peer.admitted or self._closing:
            await self._finish(peer, "left")
            return
        await self.broker.presence_put(
            peer.room, peer.peer_id, peer.record(), self.config.resume_seconds
        )
        peer.expiry_task = asyncio.create_task(self._expire_later(peer))

    async def _expire_later(self, peer: LocalPeer) -> None:
        await asyncio.sleep(self.config.resume_seconds)
        if peer.conn is None and not peer.gone:
            peer.expiry_task = None
            await self._finish(peer, "timeout")

    async def leave(self, peer: LocalPeer, reason: str, *, close: bool = True) -> None:
        """A clean leave: the room hears it at once."""
        conn = peer.conn
        peer.conn = None
        await self._finish(peer, reason)
        if conn is not None and close:
            with contextlib.suppress(Exception):
                await conn.close(1000, "left")

    async def _finish(self, peer: LocalPeer, reason: str) -> None:
        if peer.gone:
            return
        peer.gone = True
        if peer.expiry_task is not None:
            peer.expiry_task.cancel()
            peer.expiry_task = None
        await self._forget(peer)
        if await self.broker.presence_remove(peer.room, peer.peer_id):
            await self._publish(
                peer.room,
                {
                    "k": "left",
                    "peer_id": peer.peer_id,
                    "reason": reason,
                    "lobby": not peer.admitted,
                },
            )
            if peer.admitted:
                self._spawn(self._call_left(peer.room, peer.peer_id))

    async def _forget(self, peer: LocalPeer) -> None:
        """Drop local state (not presence)."""
        if self.peers.get(peer.peer_id) is peer:
            del self.peers[peer.peer_id]
        local = self.rooms.get(peer.room)
        if local is not None:
            local.discard(peer.peer_id)
            if not local:
                del self.rooms[peer.room]
                lock = self._locks.get(peer.room)
                if lock is not None and not lock.locked():
                    del self._locks[peer.room]
                with contextlib.suppress(Exception):
                    await self.broker.unsubscribe(_channel(peer.room))

    async def _call_left(self, room: str, peer_id: str) -> None:
        entries = await self._live_entries(room)
        empty = not any(r["admitted"] for r in entries.values())
        await self.gate.call_left(room, peer_id, empty)

    # --- presence --------------------------------------------------------------------

    async def _live_entries(self, room: str) -> dict[str, dict[str, Any]]:
        """Presence of a room without ghosts; ghosts found are removed and announced."""
        now = time.time()
        live: dict[str, dict[str, Any]] = {}
        for peer_id, (record, expires) in (await self.broker.presence_all(room)).items():
            if expires >= now:
                live[peer_id] = record
                continue
            if peer_id in self.peers:
                continue  # ours: our own timer decides
            if await self.broker.presence_remove(room, peer_id):
                await self._publish(
                    room,
                    {
                        "k": "left",
                        "peer_id": peer_id,
                        "reason": "gone",
                        "lobby": not record["admitted"],
                    },
                )
                if record["admitted"]:
                    self._spawn(self._call_left(room, peer_id))
        return live

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.presence_refresh_seconds)
            for room, peer_ids in list(self.rooms.items()):
                attached = [
                    pid
                    for pid in peer_ids
                    if pid in self.peers and self.peers[pid].conn is not None
                ]
                try:
                    await self.broker.presence_touch(
                        room, attached, self.config.presence_ttl_seconds
                    )
                    await self._live_entries(room)  # sweeps other processes' ghosts
                except Exception:
                    log.exception("presence refresh failed for a room")

    # --- the room channel ------------------------------------------------------------

    async def _publish(self, room: str, envelope: dict[str, Any]) -> None:
        # Every process serving the room, this one included, gets it from the broker.
        envelope["node"] = self.node_id
        await self.broker.publish(_channel(room), json.dumps(envelope))

    def _handler(self, room: str) -> Any:
        async def handle(text: str) -> None:
            try:
                await self._deliver(room, json.loads(text))
            except Exception:
                log.exception("delivering a room envelope failed")

        return handle

    def _local(self, room: str) -> list[LocalPeer]:
        return [self.peers[pid] for pid in self.rooms.get(room, ()) if pid in self.peers]

    async def _deliver(self, room: str, envelope: dict[str, Any]) -> None:
        kind = envelope["k"]
        if kind == "to":
            target = self.peers.get(envelope["to"])
            if target is not None and target.room == room and target.conn is not None:
                await self._send_raw(target, envelope["frame"])
        elif kind == "all":
            for peer in self._local(room):
                if peer.admitted:
                    await self._send_raw(peer, envelope["frame"])
        elif kind == "joined":
            record = envelope["record"]
            for peer in self._local(room):
                if peer.admitted and peer.peer_id != record["peer_id"]:
                    await self._send(peer, p.PeerJoined(peer=peer_info(peer.record(), record)))
        elif kind == "knock":
            record = envelope["record"]
            for peer in self._local(room):
                if peer.admitted and peer.identity.kind == "user":
                    await self._send(peer, p.Knock(peer=peer_info(peer.record(), record)))
        elif kind == "left":
            for peer in self._local(room):
                if peer.admitted and peer.peer_id != envelope["peer_id"]:
                    await self._send(
                        peer, p.PeerLeft(peer_id=envelope["peer_id"], reason=envelope["reason"])
                    )
        elif kind == "restart":
            for peer in self._local(room):
                if peer.admitted and peer.peer_id != envelope["from"]:
                    await self._send(
                        peer, p.IceRestart(from_=envelope["from"], reason="reconnected")
                    )
        elif kind == "close":
            target = self.peers.get(envelope["to"])
            if target is not None and target.room == room:
                target.gone = True  # presence was already removed by the replacer
                await self._forget(target)
                conn, target.conn = target.conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(int(envelope["code"]), "replaced by another tab")
        elif kind == "adopted":
            target = self.peers.get(envelope["peer_id"])
            if target is not None and envelope.get("node") != self.node_id:
                target.gone = True
                if target.expiry_task is not None:
                    target.expiry_task.cancel()
                await self._forget(target)
        elif kind in {"admit", "deny"}:
            guest = self.peers.get(envelope["peer_id"])
            if guest is not None and guest.room == room and not guest.admitted:
                if kind == "admit":
                    await self._admit(guest)
                else:
                    conn, guest.conn = guest.conn, None
                    await self._finish(guest, "denied")
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close(4403, "not admitted")

    async def _admit(self, guest: LocalPeer) -> None:
        entries = await self._live_entries(guest.room)
        if sum(1 for r in entries.values() if r["admitted"]) >= self.config.max_peers:
            await self._error(guest, "room_full", "the call is full")
            return
        guest.admitted = True
        token, guest.resume_hash = resume_token()
        await self.broker.presence_put(
            guest.room, guest.peer_id, guest.record(), self.config.presence_ttl_seconds
        )
        await self._welcome(guest, token, entries, resumed=False)
        await self._publish(guest.room, {"k": "joined", "record": guest.record()})
        self._spawn(self.gate.call_joined(guest.room, guest.peer_id, guest.identity))

    # --- sending ---------------------------------------------------------------------

    async def _send(self, peer: LocalPeer, frame: p.Frame) -> None:
        await self._send_raw(peer, frame.dump())

    async def _send_raw(self, peer: LocalPeer, text: str) -> None:
        conn = peer.conn
        if conn is None:
            return
        try:
            await conn.send_text(text)
        except Exception:
            # A dead socket is noticed by its own receive loop; never fail the sender.
            log.debug("send to %s failed", peer.peer_id)

    async def _error(self, peer: LocalPeer, code: str, message: str) -> None:
        await self._send(peer, p.ErrorFrame(code=code, message=message))


def _channel(room: str) -> str:
    return f"room:{room}"
