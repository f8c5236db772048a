"""Fan-out of note updates and presence to the open connections of a note.

In one process a dict of listeners is enough. With DARI_REDIS_URL set, every message
is also published on Redis (channel dari:notes:<note id>) and messages from other
processes are delivered to this process's listeners, so several uvicorn workers or
machines can serve one note. Order across processes is not guaranteed: connections
fill any gap in revisions from the database (the source of truth), never from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

log = logging.getLogger("dari.notes")
Listener = Callable[[dict[str, Any]], None]
CHANNEL_PREFIX = "dari:notes:"


class Fanout:
    def __init__(self, redis_url: str = "") -> None:
        self.rooms: dict[int, set[Listener]] = {}
        self.origin = secrets.token_hex(8)
        self.redis_url = redis_url
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None

    def subscribe(self, note_id: int, listener: Listener) -> None:
        self.rooms.setdefault(note_id, set()).add(listener)

    def unsubscribe(self, note_id: int, listener: Listener) -> None:
        listeners = self.rooms.get(note_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self.rooms[note_id]

    def deliver(self, note_id: int, message: dict[str, Any]) -> None:
        for listener in list(self.rooms.get(note_id, ())):
            listener(message)

    async def publish(self, note_id: int, message: dict[str, Any]) -> None:
        self.deliver(note_id, message)
        if self.redis_url:
            await self._start()
            from redis.exceptions import RedisError  # loaded by _start already

            payload = json.dumps({"origin": self.origin, "message": message}, ensure_ascii=False)
            try:
                await self._redis.publish(f"{CHANNEL_PREFIX}{note_id}", payload)
            except (RedisError, OSError):
                # Redis down: local editors still work; the other processes' editors
                # catch up from the database on rejoin.
                log.warning("notes: could not publish to Redis", exc_info=True)

    async def start(self) -> None:
        """Connect to Redis (if configured) before the first editor joins."""
        if self.redis_url:
            await self._start()

    async def _start(self) -> None:
        if self._task is not None:
            if self._ready is not None:
                await self._ready.wait()
            return
        import redis.asyncio as aioredis

        self._ready = asyncio.Event()
        self._redis = aioredis.from_url(self.redis_url)
        pubsub = self._redis.pubsub()
        await pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
        self._task = asyncio.create_task(self._listen(pubsub))
        self._ready.set()

    async def _listen(self, pubsub: Any) -> None:
        from redis.exceptions import RedisError

        try:
            async for item in pubsub.listen():
                if item.get("type") != "pmessage":
                    continue
                try:
                    data = json.loads(item["data"])
                    note_id = int(item["channel"].decode().rsplit(":", 1)[1])
                except (ValueError, KeyError, UnicodeDecodeError):
                    continue
                if data.get("origin") != self.origin:
                    self.deliver(note_id, data["message"])
        except (RedisError, OSError):
            # Lost Redis: this process no longer hears the others until restarted;
            # its editors still reach the database, which stays the truth.
            log.warning("notes: Redis subscription lost", exc_info=True)
        finally:
            with contextlib.suppress(RedisError, OSError):  # closing a broken connection
                await pubsub.aclose()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # _listen logs its own failures
                await self._task
            self._task = None
        if self._redis is not None:
            from redis.exceptions import RedisError

            with contextlib.suppress(RedisError, OSError):  # closing a broken connection
                await self._redis.aclose()
            self._redis = None
