"""The thin ASGI shell: WebSocket endpoints around the Hub, the user channel and echo.

`SignalingService` is started and stopped by whoever hosts it: the server's
lifespan (mounted at /ws) or `dari signaling` (standalone, `standalone_app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar, overload

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from signaling import bus
from signaling import protocol as p
from signaling.broker import Broker, broker_for
from signaling.collector import FullCollections
from signaling.connection import DEFAULT_LIMITS, SOCKET_GONE, SendLimits, WebSocketConnection
from signaling.echo import EchoService, EchoSession
from signaling.gate import Gatekeeper, Identity, SignalingConfig
from signaling.peers import LocalPeer
from signaling.rooms import Hub, Refused
from signaling.serving import DirectSocket, claim
from signaling.users import WAKE_CHANNEL, CatchUpGate, Prefetch, Subscription, UserChannel

log = logging.getLogger("dari.signaling")

SESSION_COOKIE = "dari_session"
F = TypeVar("F")

# The close code of a socket whose login session ended; ws-client does not reconnect.
SESSION_ENDED = 4403


class Closed(Exception):
    """The connection is over; `code` says how (None: the client went away)."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameReader(Generic[F]):
    """Receives, size-checks, rate-limits and parses frames for one connection.

    Signaling's own frames by default; another protocol on the same stack (the shared
    notes, signaling/notes.py) passes its own `parse` and frame size limit.
    """

    @overload
    def __init__(
        self: FrameReader[p.ClientFrame],
        websocket: WebSocket | DirectSocket,
        config: SignalingConfig,
    ) -> None: ...

    @overload
    def __init__(
        self,
        websocket: WebSocket | DirectSocket,
        config: SignalingConfig,
        *,
        parse: Callable[[str | bytes], F],
        max_bytes: int = p.MAX_FRAME_BYTES,
    ) -> None: ...

    def __init__(
        self,
        websocket: WebSocket | DirectSocket,
        config: SignalingConfig,
        *,
        parse: Callable[[str | bytes], Any] = p.parse_client,
        max_bytes: int = p.MAX_FRAME_BYTES,
    ) -> None:
        self.websocket = websocket
        self.receive: Callable[[float], Awaitable[Message]] = (
            websocket.receive_within
            if isinstance(websocket, DirectSocket)
            else functools.partial(_receive_within, websocket)
        )
        self.config = config
        self.parse = parse
        self.max_bytes = max_bytes
        self.tokens = config.burst
        self.stamp = time.monotonic()
        self.bad = 0

    async def next(self, wait: float) -> F:
        """The next valid frame; error frames for bad ones; Closed when it must end."""
        config = self.config
        while True:
            try:
                message = await self.receive(wait)
            except TimeoutError:
                raise Closed(4408, "no heartbeat") from None
            if message["type"] == "websocket.disconnect":
                raise Closed(None)
            text = message.get("text")
            data: str | bytes = text if text is not None else (message.get("bytes") or b"")
            if len(data) > self.max_bytes:
                raise Closed(1009, "frame too large")
            # Token bucket: refilled by the time since the last frame.
            now = time.monotonic()
            tokens = self.tokens + (now - self.stamp) * config.rate_per_second
            if tokens > config.burst:
                tokens = config.burst
            self.stamp = now
            self.tokens = tokens = tokens - 1
            if tokens < 0:
                # Overdrawn twice the burst: a flood, not a burst. Close.
                if tokens < -config.burst:
                    raise Closed(1008, "rate limit exceeded")
                await self.error("rate_limited", "too many frames; slow down")
                continue
            try:
                frame: F = self.parse(data)
                return frame
            except p.ProtocolError as error:
                self.bad += 1
                if self.bad > self.config.max_bad_frames:
                    raise Closed(1008, "too many bad frames") from None
                await self.error(error.code, error.message)

    async def error(self, code: str, message: str) -> None:
        await self.websocket.send_text(p.ErrorFrame(code=code, message=message).dump())


async def _receive_within(websocket: WebSocket, seconds: float) -> Message:
    """A socket without a direct lane: asyncio.timeout, not wait_for (3.11's wait_for
    wraps the receive in a task: a task hop per frame and a task per idle socket)."""
    async with asyncio.timeout(seconds):
        return await websocket.receive()


class SignalingService:
    """One per process: the hub, the user channel, the echo peers and their endpoints."""

    def __init__(
        self, gate: Gatekeeper, config: SignalingConfig | None = None, broker_url: str = ""
    ) -> None:
        self.gate = gate
        self.config = config or SignalingConfig()
        self.broker_url = broker_url
        # Each socket's send queue bound (signaling/connection.py).
        self.send_limits: SendLimits = DEFAULT_LIMITS
        self.sockets: set[WebSocket] = set()
        # Who is on each authenticated socket, and the sockets closed because their
        # login session ended (a call peer so closed keeps no resume slot).
        self.identities: dict[WebSocket, Identity] = {}
        self.ended: set[WebSocket] = set()
        # Others that hold sockets of a login session (the server's notes socket).
        self.session_listeners: list[Callable[[int, str | None], Awaitable[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hub: Hub | None = None
        self._users: UserChannel | None = None
        self._echo: EchoService | None = None
        self._wake_publish: asyncio.Task[None] | None = None
        self._wake_again = False
        # Full garbage collections when sockets have closed (signaling/collector.py).
        self.collections = FullCollections(lambda: len(self.sockets))
        self._collecting: asyncio.Task[None] | None = None

    # Parts are made at start, in the loop that serves them: a Redis connection
    # belongs to one event loop. A second start from another loop (two test
    # clients of one app) is ignored; that loop's sockets are refused (1013).
    async def start(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        broker: Broker = broker_for(self.broker_url, self.config.broker_prefix)
        self._hub = Hub(broker, self.gate, self.config)
        self._users = UserChannel(self.gate, self.config)
        self._echo = EchoService(self.config)
        await self._hub.start()
        await self._users.start()
        await broker.subscribe(bus.SESSIONS_CHANNEL, self._on_session_message)
        await broker.subscribe(WAKE_CHANNEL, self._on_wake_message)
        self._collecting = asyncio.create_task(self.collections.run())

    def wake_notifications(self) -> None:
        """Ask every process's user channel to poll the outbox now (from any thread):
        called once a transaction that wrote notifications has committed."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has just closed
            loop.call_soon_threadsafe(self._notifications_committed)

    def _notifications_committed(self) -> None:
        """This process polls at once; the others hear a wake on the broker. Commits that
        come while a wake is being published make one more, not one each."""
        if self._users is None or self._hub is None:
            return
        self._users.wake()
        if self._wake_publish is None or self._wake_publish.done():
            self._wake_publish = asyncio.create_task(self._publish_wakes(self._hub.broker))
        else:
            self._wake_again = True

    async def _publish_wakes(self, broker: Broker) -> None:
        while True:
            self._wake_again = False
            try:
                await broker.publish(WAKE_CHANNEL, "wake")
            except broker.errors as error:
                # The others still poll every notification_poll_seconds.
                log.warning("notification wake not published: %s", error)
            if not self._wake_again:
                return

    async def _on_wake_message(self, _: str) -> None:
        if self._users is not None:
            self._users.wake()

    async def stop(self) -> None:
        """Close everything: rooms first (they announce), then the rest."""
        if self._loop is not asyncio.get_running_loop():
            return
        hub, users, echo = self._hub, self._users, self._echo
        self._hub = self._users = self._echo = None
        for task in (self._wake_publish, self._collecting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._wake_publish = self._collecting = None
        try:
            if hub is not None:
                await hub.stop()
            if users is not None:
                await users.stop()
            if echo is not None:
                await echo.stop()
            for websocket in list(self.sockets):
                # Never waits for a client that stopped reading (cut off later).
                await WebSocketConnection(websocket, self.send_limits).close(
                    1001, "server shutting down"
                )
        finally:
            self.sockets.clear()
            self.identities.clear()
            self.ended.clear()
            self._loop = None

    def open_rooms(self) -> int:
        """Rooms with a participant connected to this process (for the metrics)."""
        return len(self._hub.local.rooms()) if self._hub is not None else 0

    @property
    def running(self) -> bool:
        """Started in some event loop (the shared notes use the broker from any loop of the
        process: the memory broker has no loop of its own, and a process serving Redis
        has one loop)."""
        return self._hub is not None

    # --- sessions that end -----------------------------------------------------------

    async def end_sessions(self, user_id: int, session: str | None = None) -> None:
        """Tell every process that a login session (or, with None, all of a user's
        sessions) ended: each closes the sockets opened with it."""
        if not self._serving():
            return
        await self.hub.broker.publish(
            bus.SESSIONS_CHANNEL, bus.encode(bus.SessionEnded(user_id=user_id, session=session))
        )

    async def _on_session_message(self, text: str) -> None:
        try:
            message = bus.decode(text)
        except ValidationError as error:
            log.warning("dropped a malformed sessions message: %s", bus.explain(error))
            return
        if isinstance(message, bus.SessionEnded):
            await self.close_sessions(message.user_id, message.session)
            for listener in self.session_listeners:
                try:
                    await listener(message.user_id, message.session)
                except Exception:
                    # Task guard: one listener's failure must not keep the others'
                    # sockets open.
                    log.exception("a session-ended listener failed")

    def on_session_end(self, listener: Callable[[int, str | None], Awaitable[None]]) -> None:
        """Also call `listener(user_id, session)` when a session ends (on every process)."""
        self.session_listeners.append(listener)

    async def close_sessions(self, user_id: int, session: str | None) -> int:
        """Close this process's sockets of that session (or user); how many."""
        closed = 0
        for websocket, identity in list(self.identities.items()):
            if identity.user_id != user_id:
                continue
            if session is not None and identity.session != session:
                continue
            self.ended.add(websocket)
            closed += 1
            # Through a connection: this runs in the broker's reader, which a client
            # that stopped reading must not hold up.
            await WebSocketConnection(websocket, self.send_limits).close(
                SESSION_ENDED, "session ended"
            )
        return closed

    def _track(self, websocket: WebSocket, identity: Identity | None) -> None:
        if identity is not None and identity.user_id is not None:
            self.identities[websocket] = identity

    def _untrack(self, websocket: WebSocket) -> bool:
        """Forget the socket; True when its session ended."""
        self.sockets.discard(websocket)
        self.collections.socket_closed()
        self.identities.pop(websocket, None)
        if websocket in self.ended:
            self.ended.discard(websocket)
            return True
        return False

    def _serving(self) -> bool:
        return self._loop is asyncio.get_running_loop() and self._hub is not None

    @property
    def hub(self) -> Hub:
        assert self._hub is not None, "signaling is not running"
        return self._hub

    @property
    def users(self) -> UserChannel:
        assert self._users is not None, "signaling is not running"
        return self._users

    @property
    def echo(self) -> EchoService:
        assert self._echo is not None, "signaling is not running"
        return self._echo

    def routes(self) -> list[WebSocketRoute]:
        """The endpoints, by their path under /ws."""
        return [
            WebSocketRoute("/room", self.room_endpoint),
            WebSocketRoute("/user", self.user_endpoint),
            WebSocketRoute("/echo", self.echo_endpoint),
        ]

    def app(self) -> Starlette:
        """The endpoints, to mount at /ws."""
        return Starlette(routes=self.routes())

    # --- shared steps ----------------------------------------------------------------

    def origin_ok(self, websocket: WebSocket) -> bool:
        """A browser must come from our own page (or an allowed origin)."""
        origin = websocket.headers.get("origin")
        if origin is None:
            return True  # not a browser: it must bring a join token (checked later)
        host = websocket.headers.get("host", "")
        scheme = "https" if websocket.url.scheme == "wss" else "http"
        return origin in {f"{scheme}://{host}", *self.config.allowed_origins}

    async def authenticate(self, websocket: WebSocket, token: str | None) -> Identity | None:
        return await self.gate.authenticate(self._cookie(websocket), token)

    @staticmethod
    def _cookie(websocket: WebSocket) -> str | None:
        # A cookie counts only with an Origin we trust (cross-site WebSocket hijacking).
        if websocket.headers.get("origin") is None:
            return None
        return websocket.cookies.get(SESSION_COOKIE)

    @staticmethod
    async def refuse(websocket: WebSocket, code: int = 4403) -> None:
        with contextlib.suppress(*SOCKET_GONE):
            await websocket.close(code)

    # --- /ws/room --------------------------------------------------------------------

    async def room_endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if not self._serving():
            await self.refuse(websocket, 1013)
            return
        hub = self.hub
        self.sockets.add(websocket)
        socket = claim(websocket)
        reader = FrameReader(socket, self.config)
        peer: LocalPeer | None = None
        conn = WebSocketConnection(socket, self.send_limits)
        close: Closed | None = None
        try:
            if not self.origin_ok(websocket):
                raise Closed(4403)
            try:
                first = await reader.next(self.config.join_timeout_seconds)
            except Closed as closed:
                raise Closed(4400 if closed.code == 4408 else closed.code) from None
            if not isinstance(first, p.Join):
                raise Closed(4400, "first frame must be join")
            identity = await self.authenticate(websocket, first.token)
            self._track(websocket, identity)
            try:
                peer = await hub.join(conn, identity, first)
            except Refused as refused:
                if refused.error:
                    await reader.error(refused.error, refused.message)
                raise Closed(refused.code) from None
            while True:
                frame = await reader.next(2 * self.config.heartbeat_seconds)
                await hub.handle(peer, frame)
                if peer.gone:
                    break
        except Closed as closed:
            close = closed
        except WebSocketDisconnect:
            close = Closed(None)
        except Exception:
            # Connection guard: the gate (database) or a bug failed this one
            # connection; it closes with 1011 and `finally` still releases its peer.
            log.exception("room connection failed")
            close = Closed(1011, "internal error")
        finally:
            ended = self._untrack(websocket)
            if peer is not None:
                if ended or (close is not None and close.code in {1008, 1009}):
                    # Thrown out for misbehaving: no resume slot.
                    await hub.leave(peer, "left", close=False)
                else:
                    await hub.disconnected(peer, conn)
            if close is not None and close.code is not None:
                await self.refuse(websocket, close.code)

    # --- /ws/user --------------------------------------------------------------------

    async def user_endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if not self._serving():
            await self.refuse(websocket, 1013)
            return
        users = self.users
        self.sockets.add(websocket)
        socket = claim(websocket)
        reader = FrameReader(socket, self.config)
        subscription: Subscription | None = None
        close: Closed | None = None
        try:
            if not self.origin_ok(websocket):
                raise Closed(4403)
            first = await reader.next(self.config.join_timeout_seconds)
            if not isinstance(first, p.Subscribe):
                raise Closed(4400, "first frame must be subscribe")
            prefetch: Prefetch | None = None
            gate = self.gate
            if isinstance(gate, CatchUpGate):
                # One database read for both the session and the catch-up.
                mark = users.mark()
                identity, rows = await gate.authenticate_subscriber(
                    self._cookie(websocket), first.token, first.after_id
                )
                if rows is not None:
                    prefetch = Prefetch(mark, rows)
            else:
                identity = await self.authenticate(websocket, first.token)
            if identity is None or identity.user_id is None:
                raise Closed(4403)
            self._track(websocket, identity)
            conn = WebSocketConnection(socket, self.send_limits)
            subscription = await users.subscribe(identity.user_id, conn, first.after_id, prefetch)
            while True:
                frame = await reader.next(2 * self.config.heartbeat_seconds)
                if isinstance(frame, p.Ping):
                    await conn.send_text(p.Pong(ts=frame.ts).dump())
                else:
                    await reader.error("bad_frame", f"{frame.type!r} is not used here")
        except Closed as closed:
            close = closed
        except WebSocketDisconnect:
            close = None
        except Exception:
            # Connection guard: the gate (database) or a bug failed this one
            # connection; it closes with 1011 and `finally` drops its subscription.
            log.exception("user channel failed")
            close = Closed(1011)
        finally:
            self._untrack(websocket)
            if subscription is not None:
                users.unsubscribe(subscription)
            if close is not None and close.code is not None:
                await self.refuse(websocket, close.code)

    # --- /ws/echo --------------------------------------------------------------------

    async def echo_endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if not self._serving():
            await self.refuse(websocket, 1013)
            return
        echo = self.echo
        self.sockets.add(websocket)
        reader = FrameReader(claim(websocket), self.config)
        close: Closed | None = None
        session: EchoSession | None = None
        try:
            if not self.origin_ok(websocket):
                raise Closed(4403)
            first = await reader.next(self.config.join_timeout_seconds)
            if not isinstance(first, p.Offer):
                raise Closed(4400, "send an offer")
            identity = await self.authenticate(websocket, first.token)
            if identity is None or identity.kind != "user":
                raise Closed(4403)
            self._track(websocket, identity)
            session = echo.open()
            if session is None:
                raise Closed(1013, "echo test busy; try again later")
            try:
                answer = await session.answer(first.sdp)
            except Exception as error:
                # aiortc parses the client's SDP: a malformed offer raises whatever its
                # parser meets (ValueError, KeyError, IndexError, its InvalidAccessError,
                # TimeoutError from our bound...); to the client they all mean "no answer".
                log.warning("echo negotiation failed: %s", type(error).__name__)
                await reader.error("echo_failed", "could not answer that offer")
                raise Closed(1011) from None
            await websocket.send_text(p.RelayedAnswer(sdp=answer).dump())
            deadline = time.monotonic() + self.config.echo_max_seconds
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Closed(1000, "echo test time is up")
                try:
                    frame = await reader.next(min(left, 2 * self.config.heartbeat_seconds))
                except Closed as closed:
                    if closed.code == 4408 and deadline - time.monotonic() <= 0:
                        raise Closed(1000, "echo test time is up") from None
                    raise
                if isinstance(frame, p.Ping):
                    await websocket.send_text(p.Pong(ts=frame.ts).dump())
        except Closed as closed:
            close = closed
        except WebSocketDisconnect:
            close = None
        except Exception:
            # Connection guard: a bug fails this one session; it closes with 1011
            # and `finally` still frees its echo slot.
            log.exception("echo session failed")
            close = Closed(1011)
        finally:
            self._untrack(websocket)
            if session is not None:
                await echo.close(session)
            if close is not None and close.code is not None:
                await self.refuse(websocket, close.code)


class SocketLane:
    """ASGI middleware: WebSockets under `prefix` go straight to their endpoint.

    Placed inside the outer middlewares that matter to a socket (observability, the
    input guard) and outside the rest (request gate, security headers, gzip, error
    pages, exception handlers, and the router's matching against every HTTP route):
    each of those layers is a coroutine frame (and a closure or two) kept for a
    socket's whole life, and the route matching was the bulk of a connect's time on
    the event loop. A path of `routes` (exact, no parameters) is handed to its
    endpoint here, as the signaling app's router would (its scope as the `/ws` mount
    and that route would have made it): the app's own stack adds five more frames per
    socket and nothing a signaling endpoint uses (they raise no HTTP or WebSocket
    exception; each closes its own socket). Any other path under the prefix goes to
    `target`, the mounted app, which refuses it.
    """

    __slots__ = ("app", "target", "prefix", "routes")

    def __init__(
        self,
        app: ASGIApp,
        target: ASGIApp,
        prefix: str = "/ws",
        routes: Sequence[WebSocketRoute] = (),
    ) -> None:
        self.app = app
        self.target = target
        self.prefix = prefix
        self.routes = {self.prefix + route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"].startswith(self.prefix + "/"):
            root = scope.get("root_path", "")
            scope["app_root_path"] = scope.get("app_root_path", root)
            scope["root_path"] = root + self.prefix
            route = self.routes.get(scope["path"])
            if route is None:
                await self.target(scope, receive, send)
                return
            scope["route"] = route
            scope["endpoint"] = route.endpoint
            scope["path_params"] = {}
            await route.endpoint(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)


def standalone_app(service: SignalingService, extra: Sequence[BaseRoute] = ()) -> Starlette:
    """`dari signaling`: the same endpoints at /ws, on a port of their own (with `extra`
    routes beside them: the server's /healthz, /readyz and /metrics)."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    return Starlette(routes=[*extra, Mount("/ws", app=service.app())], lifespan=lifespan)
