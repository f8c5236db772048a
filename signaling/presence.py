"""Who is in a room across processes: typed entries in the broker, kept fresh, ghosts swept.

Each entry has an expiry its process refreshes; one past it is a ghost (its
process died, or its peer dropped and did not come back). The rule "whoever
removes an entry announces the leave" makes leaves idempotent across processes
and sweepers: `remove` is True for that one caller only.
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


class Presence:
    def __init__(
        self, broker: Broker, config: SignalingConfig, local: LocalPeers, on_ghost: GhostHandler
    ) -> None:
        self.broker = broker
        self.config = config
        self.local = local
        self.on_ghost = on_ghost

    async def put(self, peer: LocalPeer, ttl: float) -> None:
        """Write the peer's entry, to expire in `ttl` seconds unless refreshed."""
        await self.broker.presence_put(peer.room, peer.peer_id, peer.record().model_dump(), ttl)

    async def remove(self, room: str, peer_id: str) -> bool:
        """True for the one caller that actually removed it: that caller announces the leave."""
        return await self.broker.presence_remove(room, peer_id)

    async def live(self, room: str) -> dict[str, PeerRecord]:
        """The room's entries without ghosts; ghosts found are removed and handed to on_ghost."""
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
            if expires >= now:
                live[peer_id] = record
                continue
            if peer_id in self.local:
                continue  # ours: our own timer decides
            if await self.remove(room, peer_id):
                await self.on_ghost(room, record)
        return live

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
