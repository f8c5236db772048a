"""Who is in a room across processes: typed entries in the broker, kept fresh, ghosts swept.

Each entry has an expiry its process refreshes and names that process (`node`).
Each process also beats a heartbeat key of its own with a short TTL; when another
process's heartbeat lapses (killed, or its machine gone), the processes serving
its rooms mark its peers away: the room hears `peer-away` within about
`node_ttl_seconds + node_beat_seconds`, and the peers keep their slot until
their resume window (`resume_seconds`) ends. An entry past its expiry is a
ghost only if its process is dead (no heartbeat) or unknown: an away peer that
did not come back in time, or a peer whose process died. An expired entry of a
process that still beats is kept: that process was slow (loaded, or stopped for
a while) and, on its next refresh, re-creates any entry of a connected peer that
another process removed or marked away meanwhile, and tells the room. The rule
"whoever removes an entry announces the leave" makes leaves idempotent across
processes and sweepers: `remove` is True for that one caller only; likewise
`mark_away` for the away.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from signaling.broker import Broker
from signaling.bus import PeerRecord, explain
from signaling.connection import stop_requested
from signaling.gate import SignalingConfig
from signaling.peers import LocalPeer, LocalPeers

log = logging.getLogger("dari.signaling.presence")

# Told about a ghost this process removed (it announces the leave).
GhostHandler = Callable[[str, PeerRecord], Awaitable[None]]
# Told about a peer of a dead process that this process marked away (it announces that).
AwayHandler = Callable[[str, PeerRecord], Awaitable[None]]
# Told about a peer of ours whose entry another process marked away although we are
# alive (we stalled past our heartbeat's TTL): we say it is back.
# Also told about a peer of ours whose entry another process removed (swept as a
# ghost) while we were alive: it is restored, the room heard it left and hears it back.
BackHandler = Callable[[LocalPeer], Awaitable[None]]
# Told, after each heartbeat check, which of the processes checked beat (with their link
# addresses): signaling/links.py keeps its links to those and closes the others'.
NodesHandler = Callable[[dict[str, str], list[str]], None]


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
        on_restored: BackHandler = _nothing,
        on_nodes: NodesHandler | None = None,
    ) -> None:
        self.broker = broker
        self.config = config
        self.local = local
        self.on_ghost = on_ghost
        self.node_id = node_id
        self.on_away = on_away
        self.on_back = on_back
        self.on_restored = on_restored
        self.on_nodes = on_nodes
        # Written with each heartbeat: where this process's links listen ("" for none).
        self.address = ""
        # Other processes to check besides the watched ones (those we hold links to).
        self.also_check: Callable[[], list[str]] = list
        # Other processes whose peers we have seen, and in which of our rooms: the
        # heartbeat watch checks these only.
        self.watched: dict[str, set[str]] = {}
        # Processes whose heartbeat lapsed (a process id is never reused; one that
        # beats again leaves the set).
        self.dead: set[str] = set()
        # Our peers being said back right now (see `_back`).
        self._bringing_back: set[str] = set()
        self._back_at: dict[str, float] = {}  # when each was said back (monotonic)
        # When each entry of ours was last written: one not written yet (a peer still
        # joining) or rewritten during a refresh is not "missing".
        self._put_at: dict[str, float] = {}

    async def put(self, peer: LocalPeer, ttl: float, *, away: bool = False) -> None:
        """Write the peer's entry, to expire in `ttl` seconds unless refreshed."""
        record = self._record(peer, away=away)
        await self.broker.presence_put(peer.room, peer.peer_id, record.model_dump(), ttl)
        self._put_at[peer.peer_id] = time.monotonic()

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

    async def _alive(self, nodes: set[str]) -> set[str]:
        """Which of `nodes` beat now, in one call. A process taken for dead (its loop
        stalled, or Redis was out of reach longer than the TTL) that beats again is
        alive again."""
        if not nodes:
            return set()
        alive = set(await self.broker.nodes_alive(sorted(nodes)))
        self.dead.difference_update(alive)
        self.dead.update(nodes - alive)
        return alive

    async def live(self, room: str) -> dict[str, PeerRecord]:
        """The room's entries without ghosts (away peers included: they hold their slot);
        ghosts found are removed and handed to on_ghost, a dead process's peers marked away.

        An expired entry of a process that still beats is no ghost: that process was
        slow to refresh (loaded, or stopped for a while) and decides itself; it
        re-creates its entries if they vanished (`refresh`)."""
        now, read_at = time.time(), time.monotonic()
        records: list[tuple[str, PeerRecord, float]] = []
        for peer_id, (raw, expires) in (await self.broker.presence_all(room)).items():
            try:
                records.append((peer_id, PeerRecord.model_validate(raw), expires))
            except ValidationError as error:
                # Not written by a Dari process of this protocol: ignore it; its
                # key expires with the room's (broker.RedisBroker.KEY_TTL).
                log.warning(
                    "room %s: unreadable presence entry %s (%s)", room, peer_id, explain(error)
                )
        # Liveness asked once per process, for those whose entries need it only.
        suspects = {
            record.node
            for peer_id, record, expires in records
            if record.node
            and record.node != self.node_id
            and peer_id not in self.local
            and (record.node in self.dead or expires < now)
        }
        alive = await self._alive(suspects)
        live: dict[str, PeerRecord] = {}
        for peer_id, record, expires in records:
            if peer_id in self.local:
                await self._still_here(record, read_at)
                if expires >= now:
                    live[peer_id] = record
                continue  # ours: our own timer decides
            other = bool(record.node) and record.node != self.node_id
            if other and not record.away:
                self.watched.setdefault(record.node, set()).add(room)
            if other and record.node in suspects:
                if record.node in alive:
                    live[peer_id] = record  # its process beats: it decides
                    continue
                if not record.away:
                    # A dead process's peer keeps its slot for its resume window, counted
                    # from now: we cannot tell when the process died if nobody was watching.
                    live[peer_id] = await self.mark_away(room, record) or record
                    continue
            if expires >= now:
                live[peer_id] = record
                continue
            if await self.remove(room, peer_id):
                await self.on_ghost(room, record)
        return live

    async def _still_here(self, record: PeerRecord, read_at: float) -> None:
        """Our own connected peer marked away by another process: we had stalled past our
        heartbeat's TTL, not died. Say it is back (its entry is rewritten, not away)."""
        peer = self.local.get(record.peer_id)
        if record.away and record.node == self.node_id and peer is not None:
            if peer.conn is not None and not peer.gone:
                await self._back(peer, read_at)

    async def _back(self, peer: LocalPeer, read_at: float) -> None:
        """Once: the refresher and a relay's read may both find it away before its entry
        is rewritten, or a read from before the rewrite may arrive after it (the room
        would hear it twice)."""
        if self._back_at.get(peer.peer_id, -math.inf) >= read_at:
            return
        if peer.peer_id in self._bringing_back:
            return
        self._bringing_back.add(peer.peer_id)
        try:
            await self.on_back(peer)
            self._back_at[peer.peer_id] = time.monotonic()
        finally:
            self._bringing_back.discard(peer.peer_id)

    async def check_nodes(self) -> None:
        """Mark away the peers of the watched processes whose heartbeat has lapsed."""
        for node, rooms in list(self.watched.items()):
            rooms.intersection_update(self.local.rooms())
            if not rooms:
                del self.watched[node]
        checked = sorted({*self.watched, *self.also_check()})
        if not checked:
            return
        alive = await self.broker.nodes_alive(checked)
        if self.on_nodes is not None:
            self.on_nodes(alive, checked)
        for node in [node for node in self.watched if node not in alive]:
            self.dead.add(node)
            for room in self.watched.pop(node):
                await self.live(room)  # marks that process's peers away

    async def refresh(self) -> None:
        """Refresh the entries of all our connected peers in one round trip; restore those
        another process removed or marked away while we are alive (we were slow or
        stopped, not dead), and tell their rooms they are back."""
        rooms = {room: self.local.connected_in(room) for room in self.local.rooms()}
        rooms = {room: peer_ids for room, peer_ids in rooms.items() if peer_ids}
        if not rooms:
            return
        ttl = self.config.presence_ttl_seconds
        for marks in (self._back_at, self._put_at):
            for peer_id in [peer_id for peer_id in marks if peer_id not in self.local]:
                del marks[peer_id]
        read_at = time.monotonic()
        found = await self.broker.presence_refresh(rooms, self.node_id, ttl)
        for room, (missing, away) in found.items():
            for peer_id in missing:
                peer = self._connected(room, peer_id)
                if self._put_at.get(peer_id, math.inf) > read_at:
                    continue  # not written yet (joining), or rewritten meanwhile
                # Only if still absent: a newer tab's entry is never overwritten.
                if peer is not None and await self.broker.presence_restore(
                    room, peer_id, self._record(peer).model_dump(), ttl
                ):
                    log.warning("room %s: presence of peer %s was swept; restored", room, peer_id)
                    await self.on_restored(peer)
            for peer_id in away:
                peer = self._connected(room, peer_id)
                if peer is not None:
                    await self._back(peer, read_at)

    def _connected(self, room: str, peer_id: str) -> LocalPeer | None:
        """Our peer, still here on its socket (not left, not replaced by another tab)."""
        peer = self.local.get(peer_id)
        if peer is None or peer.room != room or peer.conn is None or peer.gone:
            return None
        return peer

    def _record(self, peer: LocalPeer, *, away: bool = False) -> PeerRecord:
        return peer.record().model_copy(update={"node": self.node_id, "away": away})

    async def refresh_loop(self) -> None:
        """Keep this process's entries alive; sweep the other processes' ghosts on the way."""
        while True:
            if stop_requested():
                raise asyncio.CancelledError
            await asyncio.sleep(self.config.presence_refresh_seconds)
            try:
                await self.refresh()
            except self.broker.errors:
                log.warning("presence refresh failed: broker unreachable")
            except Exception:
                # Task guard: if this loop ended, every peer of this process
                # would turn into a ghost for the others within the TTL.
                log.exception("presence refresh failed")
            for room in self.local.rooms():
                try:
                    await self.live(room)
                except self.broker.errors:
                    log.warning("presence sweep of room %s failed: broker unreachable", room)
                except Exception:
                    log.exception("presence sweep of room %s failed", room)

    async def heartbeat_loop(self) -> None:
        """Beat this process's heartbeat; notice the other processes' lapsed ones."""
        while True:
            try:
                await self.broker.node_beat(
                    self.node_id, self.config.node_ttl_seconds, self.address
                )
                await self.check_nodes()
            except self.broker.errors:
                log.warning("node heartbeat failed: broker unreachable")
            except Exception:
                # Task guard: if this loop ended, the others would take this process
                # for dead within the TTL and mark all its peers away.
                log.exception("node heartbeat failed")
            if stop_requested():
                raise asyncio.CancelledError
            await asyncio.sleep(self.config.node_beat_seconds)
