"""Direct links between the processes of one deployment, for frames addressed to one peer.

Through Redis, a frame for a peer on another process crosses Redis: a round trip
crosses it twice, four more process wake-ups than on one process, and redis-py's
per-read work (docs/benchmarks.md "Relay round trip"). A link is a TCP connection
from one process straight to another that carries those frames (`bus.ToPeer`);
Redis keeps presence, the rooms' other messages, and is the fallback whenever a
link is not up. The receiving process delivers a frame by the same rules as one
from Redis (relay.RoomChannel: only to an admitted peer of that room held there).

Wire: each message is a 4-byte big-endian length, then that many bytes; a frame's
message is its number, the lengths of its room and target peer id, those two, and
the frame as the very text the browser will receive (validated once, by the process
that took it from its sender: the receiver only finds the peer and sends the text,
no parse and no re-encoding, a quarter of the hop's CPU before). Every
process listens (`SignalingConfig.link_host`, `link_port`) and advertises
"host:port" with its heartbeat; the others learn it at their heartbeat check (or
on a first frame for that process) and dial it. The dialler proves it knows the
deployment's secret before the listener takes a frame: the listener sends a nonce;
the dialler answers with its node id, a nonce of its own and an HMAC of both nonces
and both node ids; the listener answers with its own HMAC of them, so the dialler
knows it reached the process it meant (not whatever listens at that address now).
Frames go one way, dialler to listener (each process dials those it sends to);
acknowledgements come back.

Order, and no loss when a link breaks:

- Redis to link. Frames sent through Redis just before a link came up may still be
  on their way when the first frames arrive on the link. So the dialler, the moment
  it switches, publishes `bus.LinkOpen` on the listener's own channel, after those
  frames (one publishing connection: Redis keeps their order); the listener holds
  the link's frames until that marker has come (at most `MARKER_WAIT_SECONDS`,
  should Redis be down).
- Link to Redis. Frames for other processes are numbered (`ToPeer.seq`, one counter
  per process); the listener acknowledges what it has handled every `ACK_SECONDS`.
  When a link breaks, the frames not acknowledged are published through Redis
  first, in order, then the ones sent meanwhile; a numbered frame is delivered only
  if it is newer than the last one delivered from that process, so a frame that
  came both ways is delivered once.
- A slow listener never holds the sender up: past `MAX_BUFFER_BYTES` written and
  not yet sent, or `MAX_UNACKED_BYTES` not acknowledged, the link is dropped and
  the frames go through Redis.

A broken link is dialled again after a back-off; a process whose heartbeat lapsed
loses its links at once (presence tells, `seen`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

from pydantic import ValidationError

from signaling import bus
from signaling import protocol as p
from signaling.broker import Broker
from signaling.connection import carry_on
from signaling.gate import SignalingConfig

log = logging.getLogger("dari.signaling.links")

# Hands a frame that came over a link to the room channel (relay.RoomChannel):
# (room, target peer id, the frame's wire text).
Deliver = Callable[[str, str, str], Awaitable[None]]

# v2: frames travel as their wire text, not as a bus.ToPeer (v1). A process of
# another version fails the handshake, and the two talk through Redis.
LINK_PURPOSE = b"dari-signaling-link-v2"
HANDSHAKE_SECONDS = 5.0
MARKER_WAIT_SECONDS = 2.0
ACK_SECONDS = 0.02
# A message: a room id, a peer id and a frame of at most a client frame's size.
MAX_MESSAGE_BYTES = 2 * p.MAX_FRAME_BYTES
MAX_HELLO_BYTES = 1024
MAX_BUFFER_BYTES = 1024 * 1024
MAX_UNACKED_BYTES = 4 * 1024 * 1024
BACKOFF_SECONDS = (0.1, 5.0)
# How often a frame for a process we have no link to may ask Redis for its address.
LOOKUP_SECONDS = 1.0

_LENGTH = struct.Struct("!I")
_HEAD = struct.Struct("!QHH")  # the frame's seq, its room's and target's lengths
_ACK = struct.Struct("!Q")


def node_channel(node: str) -> str:
    """A process's own broker channel (the `LinkOpen` markers for its links)."""
    return f"link:{node}"


def _key(secret: str) -> bytes:
    # A key of its own, derived from the deployment's secret as join tokens' is: a
    # link proof can never pass for a join token or anything else signed with it.
    return hmac.new(secret.encode(), LINK_PURPOSE, hashlib.sha256).digest()


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class LinkError(Exception):
    """A link could not be set up (refused, or its handshake failed)."""


class _Framed(asyncio.Protocol):
    """A TCP connection cut into length-prefixed messages; one over `limit` drops it."""

    limit = MAX_HELLO_BYTES

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one.)
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start, end = 0, len(buffer)
        while end - start >= 4:
            (size,) = _LENGTH.unpack_from(buffer, start)
            if size > self.limit:
                self.refuse("message too large")
                return
            if end - start - 4 < size:
                break
            message = bytes(buffer[start + 4 : start + 4 + size])
            start += 4 + size
            self.message(message)
            if self.transport is None or self.transport.is_closing():
                return
        del buffer[:start]

    def write(self, payload: bytes) -> None:
        if self.transport is not None:
            self.transport.write(_LENGTH.pack(len(payload)) + payload)

    def message(self, data: bytes) -> None:
        raise NotImplementedError

    def refuse(self, reason: str) -> None:
        raise NotImplementedError


class _Inbound(_Framed):
    """A link another process dialled: its handshake, then frames for our peers."""

    def __init__(self, links: Links) -> None:
        super().__init__()
        self.links = links
        self.nonce = secrets.token_hex(16)  # also names the link in the marker
        self.node = ""  # the dialler, once it has proved itself
        self.held = True  # until its LinkOpen marker has come through Redis
        self.frames: deque[bytes] = deque()
        self.handled = 0  # the newest seq handled: what is acknowledged
        self.acked = 0
        self._task: asyncio.Task[None] | None = None  # a delivery that had to wait
        self._timer: asyncio.TimerHandle | None = None
        self._ack_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.write(json.dumps({"v": 1, "nonce": self.nonce}).encode())
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(HANDSHAKE_SECONDS, self.refuse, "no handshake in time")

    def refuse(self, reason: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            log.warning("link from %s dropped: %s", self.node or "an unknown peer", reason)
            self.transport.abort()

    def message(self, data: bytes) -> None:
        if not self.node:
            self._hello(data)
        elif self.held or self._task is not None:
            self.frames.append(data)  # behind the marker, or a delivery that waits
        else:
            self._deliver_now(data)

    def _hello(self, data: bytes) -> None:
        links = self.links
        try:
            hello = json.loads(data)
            node, nonce, proof = hello["node"], hello["nonce"], hello["proof"]
            if not (isinstance(node, str) and isinstance(nonce, str) and isinstance(proof, str)):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.refuse("malformed handshake")
            return
        expected = links.proof("dial", self.nonce, nonce, node, links.node_id)
        if not node or not hmac.compare_digest(proof.encode(), expected.encode()):
            self.refuse("handshake failed (another deployment's secret, or none)")
            return
        if self._timer is not None:
            self._timer.cancel()
        self.node = node
        self.limit = MAX_MESSAGE_BYTES
        self.write(
            json.dumps(
                {"proof": links.proof("listen", self.nonce, nonce, node, links.node_id)}
            ).encode()
        )
        links.opened(self)

    def release(self) -> None:
        """The marker came (or did not, in time): frames may go to the peers now."""
        if self.held:
            self.held = False
            if self.frames and self._task is None and self.transport is not None:
                self._task = asyncio.create_task(self._consume(None))

    def _deliver_now(self, data: bytes) -> None:
        """Deliver in the read callback, with no task hop (as connection.py sends): a
        client's send does not wait unless its socket is full. Only a delivery that
        must wait goes on in a task, and the next frames queue behind it."""
        coro = self._handle(data)
        try:
            waiting = coro.send(None)
        except StopIteration:
            self._ack_later()
            return
        head = cast(Awaitable[None], carry_on(coro, waiting))
        self._task = asyncio.create_task(self._consume(head), name=f"link-from-{self.node}")

    async def _consume(self, head: Awaitable[None] | None) -> None:
        """Finish a delivery that had to wait, then the frames queued behind it, in order."""
        try:
            if head is not None:
                await head
            while self.frames and not self.held:
                await self._handle(self.frames.popleft())
        finally:
            self._task = None
        self._ack_later()

    def _ack_later(self) -> None:
        if self._ack_timer is None and self.handled > self.acked and self.transport is not None:
            loop = asyncio.get_running_loop()
            self._ack_timer = loop.call_later(ACK_SECONDS, self._ack)

    def _ack(self) -> None:
        self._ack_timer = None
        self.acked = self.handled
        self.write(_ACK.pack(self.handled))

    async def _handle(self, data: bytes) -> None:
        try:
            seq, room_size, to_size = _HEAD.unpack_from(data)
            start = _HEAD.size + room_size + to_size
            if start >= len(data):
                raise struct.error("the message ends before its frame")
            room = data[_HEAD.size : _HEAD.size + room_size].decode()
            to = data[_HEAD.size + room_size : start].decode()
            text = data[start:].decode()
        except (struct.error, UnicodeDecodeError):
            log.warning("link from %s: dropped an unreadable message", self.node)
            return
        if not (seq and room and to and text.startswith("{")):
            log.warning("link from %s: dropped a message that is not a frame", self.node)
            return
        self.handled = max(self.handled, seq)
        if not self.links.fresh(self.node, seq):
            return
        self.links.received += 1
        try:
            await self.links.deliver(room, to, text)
        except Exception:
            # One frame's failure (a bug) must not stop the link's other frames.
            log.exception("link from %s: delivery failed", self.node)

    def connection_lost(self, exc: Exception | None) -> None:
        # Frames not handled yet were not acknowledged: the dialler sends them through
        # Redis. A delivery under way (its task) finishes.
        self.transport = None
        for timer in (self._timer, self._ack_timer):
            if timer is not None:
                timer.cancel()
        self.frames.clear()
        self.links.closed(self)


class _Outbound(_Framed):
    """A link we dialled: the handshake, then acknowledgements of our frames."""

    def __init__(self, route: _Route) -> None:
        super().__init__()
        self.route = route
        self.nonce = secrets.token_hex(16)
        self.link = ""  # the listener's nonce: names this link in the marker
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Past this many bytes not yet sent, `pause_writing` drops the link.
        self.transport.set_write_buffer_limits(high=MAX_BUFFER_BYTES)  # type: ignore[union-attr]

    def refuse(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(LinkError(reason))
        self.drop()

    def drop(self) -> None:
        """Close at once; the route falls back to Redis now, not at connection_lost."""
        self.route.lost(self)
        if self.transport is not None:
            self.transport.abort()

    def message(self, data: bytes) -> None:
        if self.ready.done():
            if len(data) != _ACK.size:
                self.refuse("malformed acknowledgement")
                return
            self.route.acked(self, _ACK.unpack(data)[0])
            return
        links = self.route.links
        try:
            said = json.loads(data)
            if not isinstance(said, dict):
                raise TypeError
            if not self.link:
                self.link = str(said["nonce"])
                proof = links.proof("dial", self.link, self.nonce, links.node_id, self.route.node)
                hello = {"node": links.node_id, "nonce": self.nonce, "proof": proof}
                self.write(json.dumps(hello).encode())
                return
            answer = str(said["proof"])
        except (ValueError, KeyError, TypeError):
            self.refuse("malformed handshake")
            return
        expected = links.proof("listen", self.link, self.nonce, links.node_id, self.route.node)
        if not hmac.compare_digest(answer.encode(), expected.encode()):
            self.refuse("the listener is not the process it should be")
            return
        self.limit = _ACK.size
        self.ready.set_result(None)

    def pause_writing(self) -> None:
        log.warning("link to %s dropped: it reads too slowly", self.route.node)
        self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.ready.done():
            self.ready.set_exception(LinkError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.route.lost(self)


class _Route:
    """Our frames for one other process: over its link while that is up, else Redis."""

    def __init__(self, links: Links, node: str, address: str) -> None:
        self.links = links
        self.node = node
        self.address = address
        self.conn: _Outbound | None = None  # while the link is up
        # Sent over the link, not yet acknowledged: (seq, room, target, frame text).
        self.unacked: deque[tuple[int, str, str, str]] = deque()
        self.unacked_bytes = 0
        # After a break: frames on their way through Redis, in order (None: none).
        self.backlog: deque[tuple[str, str]] | None = None
        self.task = asyncio.create_task(self._run(), name=f"link-to-{node}")

    def send(self, room: str, to: str, frame: bus.RelayedFrame) -> bool:
        """Take the frame (True), or leave it to the caller to publish (no link)."""
        conn = self.conn
        if conn is None and self.backlog is None:
            return False
        links = self.links
        links.seq += 1
        seq = links.seq
        text = frame.dump()
        if conn is None or conn.transport is None:
            assert self.backlog is not None  # (lost() clears conn with its transport)
            self.backlog.append((room, links.through_redis(seq, to, text)))
            return True
        name, peer, data = room.encode(), to.encode(), text.encode()
        size = _HEAD.size + len(name) + len(peer) + len(data)
        head = _HEAD.pack(seq, len(name), len(peer))
        conn.transport.write(b"".join((_LENGTH.pack(size), head, name, peer, data)))
        links.sent += 1
        self.unacked.append((seq, room, to, text))
        self.unacked_bytes += len(text)
        if self.unacked_bytes > MAX_UNACKED_BYTES:
            log.warning("link to %s dropped: too much unacknowledged", self.node)
            conn.drop()
        return True

    def acked(self, conn: _Outbound, seq: int) -> None:
        if conn is not self.conn:
            return
        unacked = self.unacked
        while unacked and unacked[0][0] <= seq:
            self.unacked_bytes -= len(unacked.popleft()[3])

    def lost(self, conn: _Outbound) -> None:
        """The link broke: what it did not acknowledge goes through Redis, first."""
        if conn is not self.conn:
            return
        self.conn = None
        through_redis = self.links.through_redis
        self.backlog = deque(
            (room, through_redis(seq, to, text)) for seq, room, to, text in self.unacked
        )
        self.links.resent += len(self.backlog)
        self.unacked.clear()
        self.unacked_bytes = 0
        self.links.fallbacks += 1

    async def _run(self) -> None:
        """Dial, serve, fall back and dial again, for as long as the process lives."""
        backoff = BACKOFF_SECONDS[0]
        while True:
            conn = await self._dial()
            if conn is not None:
                up_at = time.monotonic()
                # Switched, and the marker written, in one step: every frame through
                # Redis before it, every frame over the link after (broker._Publisher
                # writes at the call when its connection is open).
                self.conn = conn
                await self.links.marker(self.node, conn.link)
                await conn.closed
                self.lost(conn)
                await self._drain()
                if time.monotonic() - up_at > 10 * BACKOFF_SECONDS[1]:
                    backoff = BACKOFF_SECONDS[0]
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, BACKOFF_SECONDS[1])

    async def _dial(self) -> _Outbound | None:
        conn: _Outbound | None = None
        try:
            host, port = _split(self.address)
            async with asyncio.timeout(HANDSHAKE_SECONDS):
                _, conn = await asyncio.get_running_loop().create_connection(
                    lambda: _Outbound(self), host, port
                )
                await conn.ready
            return conn
        except (OSError, ValueError, TimeoutError, LinkError) as error:
            log.info("link to %s at %s not up: %r", self.node, self.address, error)
        except BaseException:
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            raise
        if conn is not None and conn.transport is not None:
            conn.transport.abort()
        return None

    async def _drain(self) -> None:
        broker = self.links.broker
        backlog = self.backlog
        while backlog:
            room, text = backlog[0]
            try:
                await broker.publish(bus.room_channel(room), text)
            except broker.errors as error:
                # As a frame relayed through Redis at that moment would be.
                log.warning("link to %s: a frame was lost with Redis: %r", self.node, error)
            backlog.popleft()
        self.backlog = None

    def close(self) -> None:
        self.task.cancel()
        conn, self.conn, self.backlog = self.conn, None, None
        if conn is not None and conn.transport is not None:
            conn.transport.abort()


class Links:
    """This process's links: a listener for the others' and a route to each other process."""

    def __init__(
        self, broker: Broker, node_id: str, config: SignalingConfig, deliver: Deliver
    ) -> None:
        self.broker = broker
        self.node_id = node_id
        self.config = config
        self.deliver = deliver
        self._key = _key(config.link_secret)
        self.address = ""  # "host:port" the others dial, once started
        self.seq = 0  # the last number given to a frame for another process
        self._server: asyncio.Server | None = None
        self._routes: dict[str, _Route] = {}
        self._inbound: dict[str, _Inbound] = {}  # by link id (the listener's nonce)
        self._delivered: dict[str, int] = {}  # process -> newest seq delivered from it
        self._looked_up: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Counted for tests and the benchmarks: frames sent and delivered over links,
        # links that broke, and the frames that then went through Redis again.
        self.sent = 0
        self.received = 0
        self.fallbacks = 0
        self.resent = 0  # sent over a link, not acknowledged, sent again through Redis

    @staticmethod
    def wanted(broker: Broker, config: SignalingConfig) -> bool:
        """Only with other processes (a shared broker), a secret to prove, and a host."""
        return broker.shared and bool(config.link_secret) and bool(config.link_host)

    def through_redis(self, seq: int, to: str, text: str) -> str:
        """A frame sent (or meant) for a link, as the room channel's message instead."""
        return bus.encode(bus.ToPeer(to=to, frame=text, node=self.node_id, seq=seq))

    def proof(
        self, side: str, listener_nonce: str, dialler_nonce: str, dialler: str, listener: str
    ) -> str:
        parts = json.dumps([side, listener_nonce, dialler_nonce, dialler, listener])
        return hmac.new(self._key, parts.encode(), hashlib.sha256).hexdigest()

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Inbound(self), config.link_host, config.link_port
        )
        port = self._server.sockets[0].getsockname()[1]
        host = config.link_advertise or config.link_host
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        await self.broker.subscribe(node_channel(self.node_id), self._on_marker)

    async def stop(self) -> None:
        for route in self._routes.values():
            route.close()
        self._routes.clear()
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
        for inbound in list(self._inbound.values()):
            if inbound.transport is not None:
                inbound.transport.abort()
        self._inbound.clear()
        with contextlib.suppress(*self.broker.errors):
            await self.broker.unsubscribe(node_channel(self.node_id))

    # --- sending -------------------------------------------------------------------------

    def send(self, node: str, room: str, to: str, frame: bus.RelayedFrame) -> bool:
        """Send a frame for `to` (held by process `node`) over the link; False if there is
        none up (the caller publishes it through Redis)."""
        route = self._routes.get(node)
        if route is None:
            self._look_up(node)
            return False
        return route.send(room, to, frame)

    def _look_up(self, node: str) -> None:
        """A frame for a process we have no route to: ask Redis for its address now,
        rather than at the next heartbeat check."""
        now = time.monotonic()
        if not node or node == self.node_id:
            return
        if now - self._looked_up.get(node, -math.inf) < LOOKUP_SECONDS:
            return
        self._looked_up[node] = now

        async def look_up() -> None:
            try:
                self.seen(await self.broker.nodes_alive([node]), [node])
            except self.broker.errors:
                log.warning("link to %s: address not read: broker unreachable", node)

        task = asyncio.create_task(look_up())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def seen(self, alive: dict[str, str], checked: list[str]) -> None:
        """The heartbeat check's answer: keep a route to each process of `checked` that
        beats and has an address; close the others' (dead, or moved)."""
        for node in checked:
            if node == self.node_id:
                continue
            address = alive.get(node)
            route = self._routes.get(node)
            if route is not None and route.address != address:
                route.close()
                del self._routes[node]
                route = None
            if address is None:
                self._forget(node)
            elif route is None and address:
                self._routes[node] = _Route(self, node, address)

    def nodes(self) -> list[str]:
        """The processes we keep routes to (their heartbeats are checked too)."""
        return list(self._routes)

    def up(self, node: str) -> bool:
        route = self._routes.get(node)
        return route is not None and route.conn is not None

    async def marker(self, node: str, link: str) -> None:
        try:
            message = bus.LinkOpen(link=link, node=self.node_id)
            await self.broker.publish(node_channel(node), bus.encode(message))
        except self.broker.errors:
            log.warning("link to %s: marker not published: broker unreachable", node)

    # --- receiving -----------------------------------------------------------------------

    def opened(self, inbound: _Inbound) -> None:
        self._inbound[inbound.nonce] = inbound
        asyncio.get_running_loop().call_later(MARKER_WAIT_SECONDS, inbound.release)

    def closed(self, inbound: _Inbound) -> None:
        if self._inbound.get(inbound.nonce) is inbound:
            del self._inbound[inbound.nonce]

    def _forget(self, node: str) -> None:
        """A dead process: its links to us go too."""
        self._delivered.pop(node, None)
        for inbound in [i for i in self._inbound.values() if i.node == node]:
            inbound.refuse("its process is dead")

    async def _on_marker(self, text: str) -> None:
        try:
            message = bus.decode(text)
        except ValidationError as error:
            log.warning("dropped an unreadable link marker (%s)", bus.explain(error))
            return
        if isinstance(message, bus.LinkOpen):
            inbound = self._inbound.get(message.link)
            if inbound is not None and inbound.node == message.node:
                inbound.release()

    def fresh(self, node: str, seq: int) -> bool:
        """Deliver this frame? Not if a numbered frame from `node` this new was delivered
        already (it came over the link and again through Redis)."""
        if seq <= 0:
            return True
        if seq <= self._delivered.get(node, 0):
            return False
        self._delivered[node] = seq
        return True
