"""One WebSocket as rooms and the user channel see it: sending never fails or stalls the sender.

In the manner of python-websockets' `broadcast()`: whoever fans a frame out to
many connections must not stop at one that has gone, nor wait for one that has
stopped reading. A dead socket is noticed by its own receive loop (the
endpoint), which then cleans up.

Each connection has a bounded send queue and, only while that queue is not
empty, a writer task. The fast path has neither: a send is written at once when
nothing is queued, with no task hop (the relay's latency stays that of a direct
send, and an idle connection costs no task). The server's send is stepped by
hand; only if it suspends (uvicorn waits while the transport's write buffer is
over its high-water mark, i.e. the client is not reading) does the rest of it
move to a writer task, and later frames queue behind it. Past the bound (frames
or bytes) the client is closed with `SLOW_CLIENT` (4413) and its queue dropped:
memory per stalled client stays bounded, and it comes back by resuming (room:
resume token; user channel: catch-up from its last id).
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections import deque
from collections.abc import Awaitable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Protocol, cast

from starlette.types import Scope
from starlette.websockets import WebSocketDisconnect, WebSocketState

log = logging.getLogger("dari.signaling.connection")

# What a send or close on a socket that has gone raises: starlette turns the
# server's OSError into WebSocketDisconnect(1006), and raises RuntimeError
# (WebSocketDisconnected) once a close was sent; uvicorn raises RuntimeError for
# a message after its close and ClientDisconnected (an OSError) on a lost peer.
SOCKET_GONE: tuple[type[Exception], ...] = (WebSocketDisconnect, RuntimeError, OSError)

# The close code of a client that stopped reading (its send queue overflowed). Not
# final: the client reconnects and resumes (docs/signaling.md).
SLOW_CLIENT = 4413

# The scope extension under which the server (signaling/serving.py) hands over the
# socket's asyncio transport: what aborts a client that never reads its close frame.
TRANSPORT_EXTENSION = "dari.transport"


@dataclass(frozen=True, slots=True)
class SendLimits:
    """The bound of one connection's send queue (beyond the transport's own buffer)."""

    max_frames: int = 256
    max_bytes: int = 512 * 1024
    # A client being closed that has not taken its close frame by then is cut off.
    close_grace_seconds: float = 5.0


DEFAULT_LIMITS = SendLimits()


class FrameSocket(Protocol):
    """What a connection writes to: starlette's WebSocket, or its direct lane
    (signaling/serving.py)."""

    @property
    def scope(self) -> Scope: ...

    @property
    def application_state(self) -> WebSocketState: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class Connection(Protocol):
    """Where a peer's frames go; neither method raises because the socket has gone,
    and neither waits for a slow client."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


def stop_requested() -> bool:
    """Whether the running task has been asked to stop (cancelled) and has not stopped.

    A background loop's guard (`except broker.errors`, `except Exception`) can swallow
    a cancellation that reached it as another error: redis-py may turn one into a
    connection error while it tears the connection down. The loop then runs on, and
    whoever cancelled it and waits (a process's shutdown) waits for ever. Such a loop
    asks this after its guard and stops."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@types.coroutine
def carry_on(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, None]:
    """Go on with a coroutine stepped by hand until it yielded `waiting` (what `await`
    would have done): whatever the task sends or throws in is passed to it."""
    while True:
        try:
            sent = yield waiting
        except BaseException as error:
            try:
                waiting = coro.throw(error)
            except StopIteration:
                return
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration:
                return


_Close = tuple[int, str | None]


class WebSocketConnection:
    """A socket as a `Connection`, with a bounded send queue."""

    __slots__ = ("websocket", "limits", "_backlog", "_bytes", "_writer", "_closing", "_abort")

    def __init__(self, websocket: FrameSocket, limits: SendLimits = DEFAULT_LIMITS) -> None:
        self.websocket = websocket
        self.limits = limits
        # None: nothing queued and no writer (the fast path). A deque: a writer runs.
        self._backlog: deque[str | _Close] | None = None
        self._bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._abort: asyncio.TimerHandle | None = None

    @property
    def queued(self) -> int:
        """Frames waiting for the writer (0 on the fast path)."""
        return len(self._backlog) if self._backlog is not None else 0

    @property
    def closing(self) -> bool:
        return self._closing

    async def send_text(self, data: str) -> None:
        if self._closing or self.websocket.application_state != WebSocketState.CONNECTED:
            return
        backlog = self._backlog
        if backlog is None:
            self._step(self.websocket.send_text(data))
            return
        backlog.append(data)
        self._bytes += len(data)
        if len(backlog) > self.limits.max_frames or self._bytes > self.limits.max_bytes:
            self._too_slow()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close after what is queued; never waits (a stalled client is cut off later)."""
        if self._closing:
            return
        self._closing = True
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        if self._backlog is not None:
            self._backlog.append((code, reason))
            self._arm_abort()
            return
        if self._step(self.websocket.close(code, reason)):
            self._arm_abort()

    # --- the queue ----------------------------------------------------------------------

    def _step(self, coro: Coroutine[Any, Any, None]) -> bool:
        """Run a send or close until it completes or must wait; True if a writer now
        carries it on (and whatever is sent next queues behind it)."""
        try:
            waiting = coro.send(None)
        except StopIteration:
            return False
        except SOCKET_GONE as error:
            log.debug("send on a gone socket: %s", type(error).__name__)
            return False
        self._backlog = deque()
        self._bytes = 0
        self._writer = asyncio.get_running_loop().create_task(
            self._drain(cast(Awaitable[None], carry_on(coro, waiting))), name="ws-writer"
        )
        return True

    async def _drain(self, head: Awaitable[None]) -> None:
        """The writer: finish the send that had to wait, then whatever queued behind it."""
        try:
            await head
            while self._backlog:
                item = self._backlog.popleft()
                if isinstance(item, str):
                    self._bytes -= len(item)
                    await self.websocket.send_text(item)
                else:
                    await self.websocket.close(*item)
        except SOCKET_GONE as error:
            log.debug("send on a gone socket: %s", type(error).__name__)
        except Exception:
            # Task guard: a bug in a send must not leave the queue growing unseen.
            log.exception("websocket writer failed")
        finally:
            if self._writer is asyncio.current_task():
                self._writer = None
                self._backlog = None
                self._bytes = 0

    def _too_slow(self) -> None:
        """The queue overflowed: drop it and close with SLOW_CLIENT."""
        log.info("closing a client that stopped reading (%d frames queued)", self.queued)
        self._closing = True
        writer, self._writer = self._writer, None
        self._backlog = None
        self._bytes = 0
        if writer is not None:
            writer.cancel()
        self._step(self.websocket.close(SLOW_CLIENT, "too slow"))
        self._arm_abort()

    def _arm_abort(self) -> None:
        """Cut the connection off if it has not taken its close frame within the grace
        (a client that never reads would otherwise hold its socket for ever)."""
        if self._abort is not None:
            return
        scope = getattr(self.websocket, "scope", None) or {}
        transport = scope.get("extensions", {}).get(TRANSPORT_EXTENSION)
        if transport is None:
            return  # another server: its keepalive timeout is all there is
        self._abort = asyncio.get_running_loop().call_later(
            self.limits.close_grace_seconds, transport.abort
        )
