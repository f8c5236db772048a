"""Fan-out and presence, with backends chosen by URL scheme (memory://, redis://).

In the manner of encode/broadcaster: `publish(channel, text)` reaches every
subscriber of the channel in every process sharing the backend. Presence is a
per-room table of peers, each entry with an expiry that its owning process
refreshes; an entry past its expiry is a ghost (its process died, or its peer
dropped and did not come back), and readers treat it as gone.

Messages and records are text and plain dicts here; what they mean is typed in
signaling/bus.py. A publisher never sees a subscriber's failure: the broker
logs it and goes on delivering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlparse

log = logging.getLogger("dari.signaling.broker")

Handler = Callable[[str], Awaitable[None]]


class Broker(Protocol):
    # What this backend's calls raise when it cannot be reached (caught by callers
    # that can carry on without it, e.g. the presence refresher).
    errors: tuple[type[Exception], ...]
    # Whether other processes share it (and could take this one's peers over).
    shared: bool

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def publish(self, channel: str, message: str) -> None: ...

    async def subscribe(self, channel: str, handler: Handler) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    # --- presence ---
    async def presence_put(
        self, room: str, peer_id: str, record: dict[str, Any], ttl: float
    ) -> None: ...

    async def presence_touch(self, room: str, peer_ids: list[str], ttl: float) -> None: ...

    async def presence_all(self, room: str) -> dict[str, tuple[dict[str, Any], float]]:
        """peer_id -> (record, expires_at unix time), expired entries included."""
        ...

    async def presence_remove(self, room: str, peer_id: str) -> bool:
        """True for the one caller that actually removed it (so only one announces)."""
        ...

    async def presence_away(self, room: str, peer_id: str, node: str, until: float) -> bool:
        """Mark an entry held by `node` away, expiring at `until` (its resume window).

        True for the one caller that marked it (so only one announces); False if it is
        gone, already away, or now held by another node (it resumed there)."""
        ...

    # --- node heartbeats: which processes are alive ---
    async def node_beat(self, node: str, ttl: float) -> None:
        """This process is alive for `ttl` more seconds."""
        ...

    async def nodes_alive(self, nodes: list[str]) -> set[str]:
        """Those of `nodes` whose heartbeat has not expired."""
        ...

    async def node_gone(self, node: str) -> None:
        """This process stops (a clean stop): the others need not wait for the expiry."""
        ...

    async def next_seq(self, room: str) -> int: ...


class MemoryBroker:
    """One process: channels are dicts of handlers; presence is a dict."""

    errors: tuple[type[Exception], ...] = ()  # nothing to reach
    shared = False

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._presence: dict[str, dict[str, tuple[dict[str, Any], float]]] = defaultdict(dict)
        self._seq: dict[str, int] = defaultdict(int)
        self._nodes: dict[str, float] = {}

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        self._handlers.clear()

    async def publish(self, channel: str, message: str) -> None:
        handler = self._handlers.get(channel)
        if handler is None:
            return
        try:
            await handler(message)
        except Exception:
            # Delivery runs inline here; as with Redis, a subscriber's failure (a
            # gate or a bug) is logged and never reaches the publisher.
            log.exception("broker handler failed for %s", channel)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel] = handler

    async def unsubscribe(self, channel: str) -> None:
        self._handlers.pop(channel, None)

    async def presence_put(
        self, room: str, peer_id: str, record: dict[str, Any], ttl: float
    ) -> None:
        self._presence[room][peer_id] = (record, time.time() + ttl)

    async def presence_touch(self, room: str, peer_ids: list[str], ttl: float) -> None:
        entries = self._presence.get(room, {})
        until = time.time() + ttl
        for peer_id in peer_ids:
            if peer_id in entries:
                entries[peer_id] = (entries[peer_id][0], until)

    async def presence_all(self, room: str) -> dict[str, tuple[dict[str, Any], float]]:
        return dict(self._presence.get(room, {}))

    async def presence_remove(self, room: str, peer_id: str) -> bool:
        entries = self._presence.get(room)
        if entries is None or peer_id not in entries:
            return False
        del entries[peer_id]
        if not entries:
            self._presence.pop(room, None)
        return True

    async def presence_away(self, room: str, peer_id: str, node: str, until: float) -> bool:
        entry = self._presence.get(room, {}).get(peer_id)
        if entry is None or entry[0].get("node") != node or entry[0].get("away"):
            return False
        self._presence[room][peer_id] = ({**entry[0], "away": True}, until)
        return True

    async def node_beat(self, node: str, ttl: float) -> None:
        self._nodes[node] = time.monotonic() + ttl

    async def nodes_alive(self, nodes: list[str]) -> set[str]:
        now = time.monotonic()
        return {node for node in nodes if self._nodes.get(node, 0.0) > now}

    async def node_gone(self, node: str) -> None:
        self._nodes.pop(node, None)

    async def next_seq(self, room: str) -> int:
        self._seq[room] += 1
        return self._seq[room]


# Marks one presence entry away, atomically: only if it still exists, is still held by
# the dead node (not resumed elsewhere meanwhile) and is not away already. Records are
# flat JSON objects (signaling/bus.py PeerRecord), so cjson keeps them intact.
_AWAY_SCRIPT = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local record = cjson.decode(raw)
if record['node'] ~= ARGV[2] or record['away'] == true then return 0 end
record['away'] = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
"""


class RedisBroker:
    """Many processes: redis.asyncio pub/sub, presence in a hash + sorted set per room."""

    # A room's keys vanish an hour after their last write, whatever happens.
    KEY_TTL = 3600
    shared = True

    def __init__(self, url: str, prefix: str = "dari:sig:") -> None:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        # redis-py wraps most socket trouble in its ConnectionError/TimeoutError;
        # an OSError can still escape from a connection being set up or torn down.
        self.errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._url = url
        self._prefix = prefix
        self._redis: Redis = Redis.from_url(url, decode_responses=True)
        self._pubsub: Any = None
        self._handlers: dict[str, Handler] = {}
        self._reader: asyncio.Task[None] | None = None
        self._control = f"{prefix}control:{id(self)}:{time.time_ns()}"
        self._away = self._redis.register_script(_AWAY_SCRIPT)

    def _key(self, kind: str, room: str) -> str:
        return f"{self._prefix}{kind}:{room}"

    async def connect(self) -> None:
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        # Always subscribed to something, so the reader never finds an idle pubsub.
        await self._pubsub.subscribe(self._control)
        self._reader = asyncio.create_task(self._read(), name="redis-broker-reader")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
            self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        self._handlers.clear()
        await self._redis.aclose()

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except self.errors:  # a Redis hiccup must not end fan-out for good
                log.exception("redis pubsub read failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            handler = self._handlers.get(message["channel"])
            if handler is None:
                continue
            try:
                await handler(message["data"])
            except Exception:
                # This task reads for every room of the process: one message whose
                # delivery fails (a gate or a bug) must not stop the others.
                log.exception("broker handler failed for %s", message["channel"])

    async def publish(self, channel: str, message: str) -> None:
        await self._redis.publish(self._prefix + channel, message)

    async def subscribe(self, channel: str, handler: Handler) -> None:
        name = self._prefix + channel
        self._handlers[name] = handler
        await self._pubsub.subscribe(name)

    async def unsubscribe(self, channel: str) -> None:
        name = self._prefix + channel
        self._handlers.pop(name, None)
        await self._pubsub.unsubscribe(name)

    async def presence_put(
        self, room: str, peer_id: str, record: dict[str, Any], ttl: float
    ) -> None:
        peers, expiry = self._key("peers", room), self._key("expiry", room)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(peers, peer_id, json.dumps(record))
            pipe.zadd(expiry, {peer_id: time.time() + ttl})
            pipe.expire(peers, self.KEY_TTL)
            pipe.expire(expiry, self.KEY_TTL)
            await pipe.execute()

    async def presence_touch(self, room: str, peer_ids: list[str], ttl: float) -> None:
        if not peer_ids:
            return
        until = time.time() + ttl
        # XX: only refresh entries that still exist (never resurrect a removed peer).
        await self._redis.zadd(self._key("expiry", room), dict.fromkeys(peer_ids, until), xx=True)

    async def presence_all(self, room: str) -> dict[str, tuple[dict[str, Any], float]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key("peers", room))
            pipe.zrange(self._key("expiry", room), 0, -1, withscores=True)
            records, scores = await pipe.execute()
        expiry = dict(scores)
        return {
            peer_id: (json.loads(raw), float(expiry.get(peer_id, 0.0)))
            for peer_id, raw in records.items()
        }

    async def presence_remove(self, room: str, peer_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._key("peers", room), peer_id)
            pipe.zrem(self._key("expiry", room), peer_id)
            removed, _ = await pipe.execute()
        return bool(removed)

    async def presence_away(self, room: str, peer_id: str, node: str, until: float) -> bool:
        keys = [self._key("peers", room), self._key("expiry", room)]
        return bool(await self._away(keys=keys, args=[peer_id, node, until]))

    # A node's heartbeat is a key with a TTL kept by Redis itself, so that no two
    # machines' clocks are compared (unlike the presence expiry scores).
    async def node_beat(self, node: str, ttl: float) -> None:
        await self._redis.set(self._key("node", node), "1", px=max(1, int(ttl * 1000)))

    async def nodes_alive(self, nodes: list[str]) -> set[str]:
        if not nodes:
            return set()
        values = await self._redis.mget([self._key("node", node) for node in nodes])
        return {node for node, value in zip(nodes, values, strict=True) if value is not None}

    async def node_gone(self, node: str) -> None:
        await self._redis.delete(self._key("node", node))

    async def next_seq(self, room: str) -> int:
        key = self._key("seq", room)
        value = int(await self._redis.incr(key))
        await self._redis.expire(key, self.KEY_TTL)
        return value


def broker_for(url: str, prefix: str = "dari:sig:") -> Broker:
    """memory:// (or empty) for one process, redis://… for several (keys under `prefix`)."""
    scheme = urlparse(url).scheme if url else "memory"
    if scheme == "memory":
        return MemoryBroker()
    if scheme in {"redis", "rediss", "unix"}:
        return RedisBroker(url, prefix or "dari:sig:")
    raise ValueError(f"unknown broker URL scheme {scheme!r}; use memory:// or redis://")
