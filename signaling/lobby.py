"""The lobby: guests wait there until a participant, on any process, admits or denies them."""

from __future__ import annotations

from typing import Protocol

from signaling import bus
from signaling import protocol as p
from signaling.bus import PeerRecord
from signaling.gate import SignalingConfig
from signaling.peers import LocalPeer, LocalPeers, peer_info
from signaling.presence import Presence
from signaling.relay import RoomChannel
from signaling.tokens import resume_token


class Room(Protocol):
    """What the lobby needs from the hub (signaling.rooms.Hub)."""

    async def welcome(
        self, peer: LocalPeer, token: str, entries: dict[str, PeerRecord], *, resumed: bool
    ) -> None: ...

    async def announce_joined(self, peer: LocalPeer) -> None: ...

    async def finish(self, peer: LocalPeer, reason: p.LeaveReason) -> None: ...


class Lobby:
    def __init__(
        self,
        room: Room,
        local: LocalPeers,
        presence: Presence,
        channel: RoomChannel,
        config: SignalingConfig,
    ) -> None:
        self.room = room
        self.local = local
        self.presence = presence
        self.channel = channel
        self.config = config

    async def wait(self, guest: LocalPeer) -> None:
        """A guest has arrived: it waits, and the participants hear its knock."""
        await guest.send(p.Lobby())
        await self.channel.publish(guest.room, bus.Knocked(record=guest.record()))

    async def knock_again(self, peer: LocalPeer, entries: dict[str, PeerRecord]) -> None:
        """Guests waiting in the lobby knock again for a participant who can now admit them."""
        if peer.identity.kind != "user":
            return
        me = peer.record()
        for record in entries.values():
            if not record.admitted:
                await peer.send(p.Knock(peer=peer_info(me, record)))

    async def answer(self, peer: LocalPeer, frame: p.Admit | p.Deny) -> None:
        """A participant's admit or deny: checked here, carried out where the guest is."""
        if peer.identity.kind != "user":
            await peer.error("not_allowed", "only participants admit guests")
            return
        entries = await self.presence.live(peer.room)
        guest = frame.peer
        if guest not in entries or entries[guest].admitted:
            await peer.error("unknown_peer", "no such guest waiting")
            return
        if isinstance(frame, p.Admit) and self._full(entries):
            # Told here, and the guest keeps waiting: someone may leave, or deny it.
            await peer.error("room_full", "the call is full; the guest was not let in")
            return
        message: bus.Admitted | bus.Denied = (
            bus.Admitted(peer_id=guest) if isinstance(frame, p.Admit) else bus.Denied(peer_id=guest)
        )
        await self.channel.publish(peer.room, message)

    def _full(self, entries: dict[str, PeerRecord]) -> bool:
        return sum(1 for r in entries.values() if r.admitted) >= self.config.max_peers

    async def carry_out(self, room: str, message: bus.Admitted | bus.Denied) -> None:
        """On the process holding the guest (if this is it): let it in or turn it away."""
        guest = self.local.get(message.peer_id)
        if guest is None or guest.room != room or guest.admitted:
            return
        if isinstance(message, bus.Admitted):
            await self._admit(guest)
            return
        conn, guest.conn = guest.conn, None
        await self.room.finish(guest, "denied")
        if conn is not None:
            await conn.close(4403, "not admitted")

    async def _admit(self, guest: LocalPeer) -> None:
        entries = await self.presence.live(guest.room)
        if self._full(entries):
            # Filled up between the admit and now (another process): the guest is
            # refused cleanly, and the room (the admitter too) hears it leave.
            await guest.error("room_full", "the call is full")
            conn, guest.conn = guest.conn, None
            await self.room.finish(guest, "denied")
            if conn is not None:
                await conn.close(4429, "the call is full")
            return
        guest.admitted = True
        token, guest.resume_hash = resume_token()
        await self.presence.put(guest, self.config.presence_ttl_seconds)
        await self.room.welcome(guest, token, entries, resumed=False)
        await self.room.announce_joined(guest)
