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
import math
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlparse

from signaling.connection import stop_requested

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

    async def presence_refresh(
        self, rooms: dict[str, list[str]], node: str, ttl: float
    ) -> dict[str, tuple[list[str], list[str]]]:
        """Refresh `node`'s entries of many rooms at once (one round trip for Redis).

        Per room: the ids whose entry is missing (removed by another process) and those
        marked away by another process; an entry now held by another node (the peer
        resumed there) is left alone."""
        ...

    async def presence_restore(
        self, room: str, peer_id: str, record: dict[str, Any], ttl: float
    ) -> bool:
        """Write the entry only if there is none (never over a newer tab's); True if written."""
        ...

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
    async def node_beat(self, node: str, ttl: float, address: str = "") -> None:
        """This process is alive for `ttl` more seconds; its direct links listen at
        `address` ("host:port", "" for none: signaling/links.py)."""
        ...

    async def nodes_alive(self, nodes: list[str]) -> dict[str, str]:
        """Those of `nodes` whose heartbeat has not expired, each with its link address
        ("" if it has none)."""
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
        self._nodes: dict[str, tuple[float, str]] = {}

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

    async def presence_refresh(
        self, rooms: dict[str, list[str]], node: str, ttl: float
    ) -> dict[str, tuple[list[str], list[str]]]:
        until = time.time() + ttl
        result: dict[str, tuple[list[str], list[str]]] = {}
        for room, peer_ids in rooms.items():
            entries = self._presence.get(room, {})
            missing: list[str] = []
            away: list[str] = []
            for peer_id in peer_ids:
                entry = entries.get(peer_id)
                if entry is None:
                    missing.append(peer_id)
                elif entry[0].get("node") == node:
                    if entry[0].get("away"):
                        away.append(peer_id)
                    else:
                        entries[peer_id] = (entry[0], until)
            result[room] = (missing, away)
        return result

    async def presence_restore(
        self, room: str, peer_id: str, record: dict[str, Any], ttl: float
    ) -> bool:
        if peer_id in self._presence.get(room, {}):
            return False
        self._presence[room][peer_id] = (record, time.time() + ttl)
        return True

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

    async def node_beat(self, node: str, ttl: float, address: str = "") -> None:
        self._nodes[node] = (time.monotonic() + ttl, address)

    async def nodes_alive(self, nodes: list[str]) -> dict[str, str]:
        now = time.monotonic()
        beats = {node: self._nodes.get(node, (0.0, "")) for node in nodes}
        return {node: address for node, (until, address) in beats.items() if until > now}

    async def node_gone(self, node: str) -> None:
        self._nodes.pop(node, None)

    async def next_seq(self, room: str) -> int:
        self._seq[room] += 1
        return self._seq[room]


def _publish_command(channel: str, message: str) -> bytes:
    """PUBLISH channel message in the Redis protocol (what redis-py's `pack_command`
    makes, without its general machinery)."""
    name, data = channel.encode(), message.encode()
    return b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (
        len(name),
        name,
        len(data),
        data,
    )


class _Publisher:
    """PUBLISH on a connection of its own, pipelined.

    Each publish writes its command at once and waits for its reply, which one task
    reads in order for everyone: concurrent publishers do not queue behind each
    other's round trip, and none goes through the pool and redis-py's retry and
    timeout wrappers (a task per command). A publisher still sees its own failure:
    a lost connection or a reply later than `timeout` fails every publish in flight
    with a RedisError, and the next publish connects again.
    """

    def __init__(self, redis: Any, timeout: float) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        self._redis = redis
        self._timeout = timeout
        self._lost = RedisConnectionError
        self._late = RedisTimeoutError
        self._conn: Any = None
        self._pending: deque[asyncio.Future[None]] = deque()
        self._replies: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> Any:
        async with self._opening:
            if self._conn is None:
                pool = self._redis.connection_pool
                # No socket timeout on the connection: `publish` bounds the wait itself.
                conn = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
                await conn.connect()
                self._conn = conn
                self._replies = asyncio.create_task(self._read(conn), name="redis-publish-replies")
            return self._conn

    async def publish(self, channel: str, message: str) -> None:
        conn = self._conn or await self._open()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Appended and written with no await in between: replies come in this order.
        self._pending.append(future)
        try:
            await conn.send_packed_command(_publish_command(channel, message), False)
        except Exception as error:
            await self._drop(conn, self._lost(f"publish failed: {error!r}"))
            raise
        try:
            async with asyncio.timeout(self._timeout):
                await future
        except TimeoutError:
            await self._drop(conn, self._late("no reply to PUBLISH in time"))
            raise self._late("no reply to PUBLISH in time") from None

    async def _read(self, conn: Any) -> None:
        try:
            while True:
                reply = await conn.read_response(timeout=math.inf)
                future = self._pending.popleft()
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            await self._drop(conn, self._lost(f"publish connection lost: {error!r}"))

    async def _drop(self, conn: Any, error: Exception) -> None:
        """Fail what is in flight on `conn` and forget it (the next publish reconnects)."""
        if self._conn is not conn:
            return
        self._conn = None
        pending, self._pending = self._pending, deque()
        for future in pending:
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: a publisher that gave up is not told
        task, self._replies = self._replies, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        await conn.disconnect(nowait=True)

    async def close(self) -> None:
        if self._conn is not None:
            await self._drop(self._conn, self._lost("broker closed"))


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


# Refreshes one room's entries held by ARGV[2], expiring at ARGV[1]; ARGV[4..] are the
# peer ids. Returns {missing ids, ids marked away}: the owner restores those.
# An entry now held by another node is left alone (the peer resumed there).
_REFRESH_SCRIPT = """
local missing, away = {}, {}
for i = 4, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if not raw then
    missing[#missing + 1] = ARGV[i]
  else
    local record = cjson.decode(raw)
    if record['node'] == ARGV[2] then
      if record['away'] == true then
        away[#away + 1] = ARGV[i]
      else
        redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
      end
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return {missing, away}
"""

# Writes an entry only if the room has none for that peer (HSETNX, then its expiry).
_RESTORE_SCRIPT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


class RedisBroker:
    """Many processes: redis.asyncio pub/sub, presence in a hash + sorted set per room."""

    # A room's keys vanish an hour after their last write, whatever happens.
    KEY_TTL = 3600
    shared = True
    # As redis-py's default socket timeout: a publish waits no longer for Redis.
    PUBLISH_TIMEOUT = 5.0
    # Commands in flight share this many connections; past that they wait for one
    # (up to POOL_TIMEOUT) instead of failing at once, as redis-py's default pool
    # does past its limit (150 simultaneous joins closed 51 sockets with 1011).
    POOL_SIZE = 50
    POOL_TIMEOUT = 5.0

    def __init__(self, url: str, prefix: str = "dari:sig:") -> None:
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.exceptions import RedisError

        # redis-py wraps most socket trouble in its ConnectionError/TimeoutError;
        # an OSError can still escape from a connection being set up or torn down.
        self.errors: tuple[type[Exception], ...] = (RedisError, OSError)
        self._url = url
        self._prefix = prefix
        # RESP2 unless the URL asks otherwise: under RESP3, redis-py hands each pub/sub
        # message to a push handler that formats it for a debug log, read or not.
        self._pool = BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            protocol=2,
            max_connections=self.POOL_SIZE,
            timeout=self.POOL_TIMEOUT,
        )
        self._redis: Redis = Redis(connection_pool=self._pool)
        self._pubsub: Any = None
        self._handlers: dict[str, Handler] = {}
        self._reader: asyncio.Task[None] | None = None
        self._publisher = _Publisher(self._redis, self.PUBLISH_TIMEOUT)
        self._control = f"{prefix}control:{id(self)}:{time.time_ns()}"
        self._away = self._redis.register_script(_AWAY_SCRIPT)
        self._refresh = self._redis.register_script(_REFRESH_SCRIPT)
        self._restore = self._redis.register_script(_RESTORE_SCRIPT)

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
        await self._publisher.close()
        self._handlers.clear()
        await self._redis.aclose()
        await self._pool.aclose()  # ours, not closed by the client it was given to

    async def _read(self) -> None:
        # A blocking read straight from the pub/sub connection: woken by the socket,
        # not a poll with a timer armed and cancelled for every message, and without
        # redis-py's per-read retry wrapper. The pubsub is never idle (the control
        # channel). After a failure, the next read goes through redis-py's own
        # `get_message`, which reconnects and resubscribes.
        pubsub = self._pubsub
        while True:
            conn = pubsub.connection
            try:
                if conn is None or not conn.is_connected:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    channel, data = message["channel"], message["data"]
                else:
                    reply = await conn.read_response(
                        timeout=math.inf, disconnect_on_error=False, push_request=True
                    )
                    if not isinstance(reply, list) or not reply or reply[0] != "message":
                        # (Un)subscribe confirmations: redis-py keeps its books with them.
                        await pubsub.handle_message(reply, ignore_subscribe_messages=True)
                        continue
                    channel, data = reply[1], reply[2]
            except self.errors:  # a Redis hiccup must not end fan-out for good
                if stop_requested():
                    raise asyncio.CancelledError from None
                log.exception("redis pubsub read failed; retrying")
                if conn is not None:
                    await conn.disconnect(nowait=True)
                await asyncio.sleep(0.5)
                continue
            handler = self._handlers.get(channel)
            if handler is None:
                continue
            try:
                await handler(data)
            except Exception:
                # This task reads for every room of the process: one message whose
                # delivery fails (a gate or a bug) must not stop the others.
                log.exception("broker handler failed for %s", channel)

    async def publish(self, channel: str, message: str) -> None:
        await self._publisher.publish(self._prefix + channel, message)

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

    async def presence_refresh(
        self, rooms: dict[str, list[str]], node: str, ttl: float
    ) -> dict[str, tuple[list[str], list[str]]]:
        if not rooms:
            return {}
        until = time.time() + ttl
        names = list(rooms)
        async with self._redis.pipeline(transaction=False) as pipe:
            for room in names:
                keys = [self._key("peers", room), self._key("expiry", room)]
                args: list[str | float] = [until, node, self.KEY_TTL, *rooms[room]]
                await self._refresh(keys=keys, args=args, client=pipe)
            replies = await pipe.execute()
        return {
            room: (list(reply[0]), list(reply[1]))
            for room, reply in zip(names, replies, strict=True)
        }

    async def presence_restore(
        self, room: str, peer_id: str, record: dict[str, Any], ttl: float
    ) -> bool:
        keys = [self._key("peers", room), self._key("expiry", room)]
        args: list[str | float] = [peer_id, json.dumps(record), time.time() + ttl, self.KEY_TTL]
        return bool(await self._restore(keys=keys, args=args))

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
    # Its value is the link address ("1" for none, as older releases write).
    async def node_beat(self, node: str, ttl: float, address: str = "") -> None:
        px = max(1, int(ttl * 1000))
        await self._redis.set(self._key("node", node), address or "1", px=px)

    async def nodes_alive(self, nodes: list[str]) -> dict[str, str]:
        if not nodes:
            return {}
        values = await self._redis.mget([self._key("node", node) for node in nodes])
        alive: dict[str, str] = {}
        for node, value in zip(nodes, values, strict=True):
            if value is not None:
                text = value.decode() if isinstance(value, bytes) else value
                alive[node] = text if ":" in text else ""
        return alive

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
