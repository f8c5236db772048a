"""The peers of this process: who they are, their roles towards each other, sending to them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from signaling import protocol as p
from signaling.bus import PeerRecord
from signaling.connection import Connection
from signaling.gate import Identity


@dataclass(eq=False)
class LocalPeer:
    """A peer whose socket (if any: it may be away within its resume grace) is on this process."""

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
    # Frames for this peer before its welcome has gone out (a peer of another process
    # announced while this one was joining): the Hub sends them right after the
    # welcome, in order (a frame relayed over a link as its wire text). None: not
    # joining, frames go out at once.
    held: list[p.Frame | str] | None = None

    def record(self) -> PeerRecord:
        """This peer's presence entry, as the other processes read it."""
        return PeerRecord(
            peer_id=self.peer_id,
            key=self.identity.key,
            name=self.identity.name,
            kind=self.identity.kind,
            can_rollback=self.can_rollback,
            seq=self.seq,
            admitted=self.admitted,
            resume=self.resume_hash,
        )

    async def send(self, frame: p.Frame) -> None:
        """Send if connected; a socket that has gone is its endpoint's concern, not ours."""
        if self.held is not None and not isinstance(frame, p.Welcome):
            self.held.append(frame)
            return
        conn = self.conn
        if conn is not None:
            await conn.send_text(frame.dump())

    async def send_dumped(self, text: str) -> None:
        """Send a frame that is already its wire text (relayed from another process)."""
        if self.held is not None:
            self.held.append(text)
            return
        conn = self.conn
        if conn is not None:
            await conn.send_text(text)

    async def error(self, code: str, message: str) -> None:
        await self.send(p.ErrorFrame(code=code, message=message))

    async def let_go(self, code: int, reason: str) -> None:
        """Detach the socket and close it with `code` (the peer's state is the caller's)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close(code, reason)


def peer_info(me: PeerRecord, other: PeerRecord) -> p.PeerInfo:
    """`other` as seen by `me`, with my roles towards it."""
    polite, offer = p.pair_roles(
        me_first=me.seq < other.seq,
        me_can_rollback=me.can_rollback,
        other_can_rollback=other.can_rollback,
    )
    return p.PeerInfo(
        peer_id=other.peer_id,
        name=other.name,
        kind=other.kind,
        polite=polite,
        offer=offer,
        away=other.away,
    )


@dataclass
class LocalPeers:
    """The peers connected to this process, by id and by room."""

    by_id: dict[str, LocalPeer] = field(default_factory=dict)
    by_room: dict[str, set[str]] = field(default_factory=dict)

    def get(self, peer_id: str) -> LocalPeer | None:
        return self.by_id.get(peer_id)

    def __contains__(self, peer_id: str) -> bool:
        return peer_id in self.by_id

    def serves(self, room: str) -> bool:
        return room in self.by_room

    def add(self, peer: LocalPeer) -> bool:
        """Register a peer; True if it is the first of its room on this process."""
        first = peer.room not in self.by_room
        self.by_id[peer.peer_id] = peer
        self.by_room.setdefault(peer.room, set()).add(peer.peer_id)
        return first

    def remove(self, peer: LocalPeer) -> bool:
        """Unregister a peer; True if its room has no peer left on this process."""
        if self.by_id.get(peer.peer_id) is peer:
            del self.by_id[peer.peer_id]
        ids = self.by_room.get(peer.room)
        if ids is None:
            return False
        ids.discard(peer.peer_id)
        if ids:
            return False
        del self.by_room[peer.room]
        return True

    def in_room(self, room: str) -> list[LocalPeer]:
        return [self.by_id[pid] for pid in self.by_room.get(room, ()) if pid in self.by_id]

    def rooms(self) -> list[str]:
        return list(self.by_room)

    def connected_in(self, room: str) -> list[str]:
        """Ids of the room's peers here whose socket is attached (their presence is kept fresh)."""
        return [peer.peer_id for peer in self.in_room(room) if peer.conn is not None]

    def all(self) -> list[LocalPeer]:
        return list(self.by_id.values())
