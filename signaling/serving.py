"""How uvicorn serves the signaling sockets: the options every entry point shares, and
the direct lane a socket's frames take past the ASGI layers.

`dari serve`, `dari signaling`, the benchmarks and the live tests all run uvicorn
with `uvicorn_options()`, so what is measured and tested is what runs.

The direct lane. Under plain ASGI every frame a client sends is put on the
protocol's queue (and the transport's reading paused and resumed for each one),
taken off by starlette's WebSocket through every middleware's `receive` wrapper,
and every frame sent goes back down through each `send` wrapper (starlette's two
exception layers, observability's) into the protocol's dispatch on the message's
type. For a relay that is most of the time it spends on a frame (docs/benchmarks.md,
"Relay round trip"). So once an endpoint has accepted its socket it may `claim` it:
from then on the frames go between the protocol and the endpoint directly, as in
python-websockets' own server (reading paused only when 16 frames wait unread, a
single timer per socket for the receive deadline, a send written at once). The
handshake and the close still take the ASGI path, where the middlewares see them
(observability counts sockets and logs the close code). Where the server offers no
lane (starlette's TestClient, another ASGI server), `claim` returns the WebSocket
itself and everything works as before, one layer slower.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Scope
from starlette.websockets import WebSocket, WebSocketState
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from signaling.connection import TRANSPORT_EXTENSION

# The scope extension under which the protocol offers its lane.
LANE_EXTENSION = "dari.lane"

# Reading from the client is paused while this many frames wait unread, and resumed
# when no more than LOW_WATER do (python-websockets' `max_queue` default is 16).
HIGH_WATER = 16
LOW_WATER = 4


class SignalingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default (`ws="auto"` with websockets installed) sans-I/O protocol, which
    also hands the app its transport (scope extension `dari.transport`: the only way to
    cut off a client that stopped reading, whose close frame can never be written;
    signaling/connection.py) and offers the direct lane (`dari.lane`)."""

    lane: DirectSocket | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # absent when the handshake was refused
            scope["extensions"][TRANSPORT_EXTENSION] = self.transport
            scope["extensions"][LANE_EXTENSION] = self

    def send_receive_event_to_app(self) -> None:
        """As uvicorn's, but a claimed socket's frames go to its lane, which pauses
        reading only when frames pile up (uvicorn pauses and resumes for each)."""
        lane = self.lane
        if lane is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past the close: reading goes on only for the client's close reply
        message: Message
        if self.curr_msg_data_type == "text":
            try:
                message = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
        else:
            message = {"type": "websocket.receive", "bytes": data}
        lane.put_nowait(message)


class DirectSocket:
    """A claimed socket: what an endpoint reads and writes, straight on the protocol.

    It stands in for the WebSocket wherever frames are received or sent (FrameReader,
    WebSocketConnection, the notes' editor); its close and its state are the
    WebSocket's, so that the close takes the ASGI path. It also takes the place of the
    protocol's queue, so the protocol's disconnect events reach it unchanged.
    """

    __slots__ = ("websocket", "_protocol", "_messages", "_waiter", "_deadline", "_timer")

    def __init__(self, websocket: WebSocket, protocol: SignalingWebSocketProtocol) -> None:
        self.websocket = websocket
        self._protocol = protocol
        # A list, not a deque: at most HIGH_WATER + a read's worth wait in it, and an
        # idle socket's empty list is 56 bytes where a deque's first block is ~600.
        self._messages: list[Message] = []
        self._waiter: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        queue = protocol.queue
        while not queue.empty():  # what came before the claim (the join, often)
            self._messages.append(dict(queue.get_nowait()))
        protocol.queue = self  # type: ignore[assignment]
        protocol.lane = self
        # The handshake is over (claimed once accepted): its request and response, two
        # header maps of a dozen lists, need not live as long as the socket.
        protocol.request = protocol.response = None  # type: ignore[assignment]
        self._flow()

    # --- the protocol's side (it takes this for its queue) ------------------------------

    def put_nowait(self, message: Message) -> None:
        """A frame or the disconnect, from the protocol."""
        self._messages.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if message["type"] == "websocket.disconnect":
            self._stop_timer()
        self._flow()

    def empty(self) -> bool:
        return not self._messages

    async def get(self) -> Message:
        return await self.receive()

    # --- the endpoint's side -------------------------------------------------------------

    @property
    def scope(self) -> Scope:
        return self.websocket.scope

    @property
    def application_state(self) -> WebSocketState:
        return self.websocket.application_state

    async def receive(self) -> Message:
        if not self._messages:
            await self._wait()
        return self._take()

    async def receive_within(self, seconds: float) -> Message:
        """The next message; TimeoutError if none comes within `seconds`.

        One timer per socket rather than one per frame: it is armed at the first wait
        and, when it fires before the current deadline (frames came meanwhile), armed
        again for what is left."""
        if not self._messages:
            loop = self._protocol.loop
            deadline = loop.time() + seconds
            self._deadline = deadline
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._expire)
            await self._wait()
        return self._take()

    async def send_text(self, data: str) -> None:
        """Write a text frame at once; wait only while the client is not reading.

        Raises what the ASGI send would (SOCKET_GONE in signaling/connection.py)."""
        protocol = self._protocol
        if not protocol.writable.is_set():
            await protocol.writable.wait()
        if protocol.disconnected:
            raise ClientDisconnected()
        if protocol.close_sent:
            raise RuntimeError("the socket is closing")
        try:
            protocol.conn.send_text(data.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        protocol.transport.write(b"".join(protocol.conn.data_to_send()))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.websocket.close(code, reason)

    # --- inside ----------------------------------------------------------------------------

    async def _wait(self) -> None:
        waiter = self._protocol.loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _take(self) -> Message:
        message = self._messages.pop(0)
        self._flow()
        return message

    def _flow(self) -> None:
        """Pause reading while HIGH_WATER frames wait; resume at LOW_WATER."""
        protocol = self._protocol
        waiting = len(self._messages)
        if protocol.read_paused:
            if waiting <= LOW_WATER:
                protocol.read_paused = False
                protocol.transport.resume_reading()
        elif waiting >= HIGH_WATER and not protocol.close_sent:
            protocol.read_paused = True
            protocol.transport.pause_reading()

    def _expire(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # not waiting: the next wait arms the timer again
        loop = self._protocol.loop
        # A timer may fire up to the clock's resolution early.
        if loop.time() + 0.001 >= self._deadline:
            waiter.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(self._deadline, self._expire)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def claim(websocket: WebSocket) -> WebSocket | DirectSocket:
    """The accepted socket's direct lane if its server offers one, else the socket."""
    protocol = websocket.scope.get("extensions", {}).get(LANE_EXTENSION)
    if isinstance(protocol, SignalingWebSocketProtocol) and protocol.lane is None:
        return DirectSocket(websocket, protocol)
    return websocket


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config`.

    No per-message compression: signaling frames are small JSON, and each deflate
    context costs tens of KiB per connection (zlib state for both directions). No
    protocol pings from uvicorn: every Dari socket has its own heartbeat (the page
    pings every 5 s, a socket silent for two heartbeats is closed, signaling/app.py
    FrameReader), and uvicorn's would add a timer per socket and a ping to every
    socket every 20 s.
    """
    return {
        "ws": SignalingWebSocketProtocol,
        "ws_per_message_deflate": False,
        "ws_ping_interval": None,
    }
