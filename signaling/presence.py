"""Who is in a room across processes: typed entries in the broker, kept fresh, ghosts swept.

Each entry has an expiry its process refreshes and names that process (`node`).
Each process also beats a heartbeat key of its own with a short TTL; when another
process's heartbeat lapses (killed, or its machine gone), the processes serving
its rooms mark its peers away: the room hears `peer-away` within about
`node_ttl_seconds + node_beat_seconds`, and the peers keep their slot until
their resume window (`resume_seconds`) ends. An entry past its expiry is a
ghost: an away peer that did not come back in time, or a peer whose process
stopped refreshing it. The rule "whoever removes an entry announces the leave"
makes leaves idempotent across processes and sweepers: `remove` is True for that
one caller only; likewise `mark_away` for the away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from signaling.broker import Broker
from signaling.bus import PeerRecord, explain
from signaling.gate import SignalingConfig
from signaling.peers import LocalPeer, LocalPeers

log = logging.getLogger("dari.signaling.presence")

# Told about a ghost this process removed (it announces the leave).
GhostHandler = Callable[[str, PeerRecord], Awaitable[None]]
# Told about a peer of a dead process that this process marked away (it announces that).
AwayHandler = Callable[[str, PeerRecord], Awaitable[None]]
# Told about a peer of ours whose entry another process marked away although we are
# alive (we stalled past our heartbeat's TTL): we say it is back.
BackHandler = Callable[[LocalPeer], Awaitable[None]]


async def _nothing(*_: object) -> None:
    return None


class Presence:
    def __init__(
        self,
        broker: Broker,
        config: SignalingConfig,
        local: LocalPeers,
        on_ghost: GhostHandler,
        *,
        node_id: str = "",
        on_away: AwayHandler = _nothing,
        on_back: BackHandler = _nothing,
    ) -> None:
        self.broker = broker
        self.config = config
        self.local = local
        self.on_ghost = on_ghost
        self.node_id = node_id
        self.on_away = on_away
        self.on_back = on_back
        # Other processes whose peers we have seen, and in which of our rooms: the
        # heartbeat watch checks these only.
        self.watched: dict[str, set[str]] = {}
        # Processes whose heartbeat lapsed (a process id is never reused; one that
        # beats again leaves the set).
        self.dead: set[str] = set()

    async def put(self, peer: LocalPeer, ttl: float, *, away: bool = False) -> None:
        """Write the peer's entry, to expire in `ttl` seconds unless refreshed."""
        record = peer.record().model_copy(update={"node": self.node_id, "away": away})
        await self.broker.presence_put(peer.room, peer.peer_id, record.model_dump(), ttl)

    async def remove(self, room: str, peer_id: str) -> bool:
        """True for the one caller that actually removed it: that caller announces the leave."""
        return await self.broker.presence_remove(room, peer_id)

    async def mark_away(self, room: str, record: PeerRecord) -> PeerRecord | None:
        """Start the resume window of a dead process's peer; the one caller that did it
        announces it (and gets the record as now stored)."""
        until = time.time() + self.config.resume_seconds
        if not await self.broker.presence_away(room, record.peer_id, record.node, until):
            return None
        away = record.model_copy(update={"away": True})
        await self.on_away(room, away)
        return away

    async def _node_dead(self, node: str) -> bool:
        """Asked of the broker each time: a process taken for dead (its loop stalled, or
        Redis was out of reach longer than the TTL) that beats again is alive again."""
        if node in await self.broker.nodes_alive([node]):
            self.dead.discard(node)
            return False
        self.dead.add(node)
        return True

    async def live(self, room: str) -> dict[str, PeerRecord]:
        """The room's entries without ghosts (away peers included: they hold their slot);
        ghosts found are removed and handed to on_ghost, a dead process's peers marked away."""
        now = time.time()
        live: dict[str, PeerRecord] = {}
        for peer_id, (raw, expires) in (await self.broker.presence_all(room)).items():
            try:
                record = PeerRecord.model_validate(raw)
            except ValidationError as error:
                # Not written by a Dari process of this protocol: ignore it; its
                # key expires with the room's (broker.RedisBroker.KEY_TTL).
                log.warning(
                    "room %s: unreadable presence entry %s (%s)", room, peer_id, explain(error)
                )
                continue
            mine = peer_id in self.local
            if mine:
                await self._still_here(record)
            elif record.node and record.node != self.node_id and not record.away:
                self.watched.setdefault(record.node, set()).add(room)
                # A dead process's peer keeps its slot for its resume window, counted
                # from now: we cannot tell when the process died if nobody was watching.
                if (record.node in self.dead or expires < now) and await self._node_dead(
                    record.node
                ):
                    live[peer_id] = await self.mark_away(room, record) or record
                    continue
            if expires >= now:
                live[peer_id] = record
                continue
            if mine:
                continue  # ours: our own timer decides
            if await self.remove(room, peer_id):
                await self.on_ghost(room, record)
        return live

    async def _still_here(self, record: PeerRecord) -> None:
        """Our own connected peer marked away by another process: we had stalled past our
        heartbeat's TTL, not died. Say it is back (its entry is rewritten, not away)."""
        peer = self.local.get(record.peer_id)
        if record.away and record.node == self.node_id and peer is not None:
            if peer.conn is not None and not peer.gone:
                await self.on_back(peer)

    async def check_nodes(self) -> None:
        """Mark away the peers of the watched processes whose heartbeat has lapsed."""
        for node, rooms in list(self.watched.items()):
            rooms.intersection_update(self.local.rooms())
            if not rooms:
                del self.watched[node]
        if not self.watched:
            return
        alive = await self.broker.nodes_alive(list(self.watched))
        for node in [node for node in self.watched if node not in alive]:
            self.dead.add(node)
            for room in self.watched.pop(node):
                await self.live(room)  # marks that process's peers away

    async def refresh_loop(self) -> None:
        """Keep this process's entries alive; sweep the other processes' ghosts on the way."""
        while True:
            await asyncio.sleep(self.config.presence_refresh_seconds)
            for room in self.local.rooms():
                try:
                    await self.broker.presence_touch(
                        room, self.local.connected_in(room), self.config.presence_ttl_seconds
                    )
                    await self.live(room)
                except self.broker.errors:
                    log.warning("presence refresh of room %s failed: broker unreachable", room)
                except Exception:
                    # Task guard: if this loop ended, every peer of this process
                    # would turn into a ghost for the others within the TTL.
                    log.exception("presence refresh of room %s failed", room)

    async def heartbeat_loop(self) -> None:
        """Beat this process's heartbeat; notice the other processes' lapsed ones."""
        while True:
            try:
                await self.broker.node_beat(self.node_id, self.config.node_ttl_seconds)
                await self.check_nodes()
            except self.broker.errors:
                log.warning("node heartbeat failed: broker unreachable")
            except Exception:
                # Task guard: if this loop ended, the others would take this process
                # for dead within the TTL and mark all its peers away.
                log.exception("node heartbeat failed")
            await asyncio.sleep(self.config.node_beat_seconds)
