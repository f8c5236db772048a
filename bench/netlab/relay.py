"""A user-space impairing UDP relay, in front of coturn on the patient's side.

The kernel here has no netem, so delay, jitter, loss and outages are made in user
space: every client address that sends to the relay gets its own upstream socket to
the TURN server, and every datagram, each way, goes through a `Link` that models a
serial line: a rate (with a drop-tail queue), a one-way delay with jitter (order kept,
like a real line), random loss, burst loss (Gilbert-Elliott) and outages.

The impairment can be changed while the call runs (`Relay.set_profile`, `Relay.cut`).
Everything is bounded: the queue in bytes, the number of clients, and the relay stops
with the loop that runs it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import cast

MAX_CLIENTS = 64
MAX_DATAGRAM = 65_535
UDP_IP_OVERHEAD = 28  # IPv4 + UDP header bytes on the wire


@dataclass(frozen=True)
class Impairment:
    """One direction of a link. Rates in kbit/s (0 = unlimited), times in ms."""

    rate_kbps: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # random loss, 0..1
    burst_every_s: float = 0.0  # mean time between loss bursts (0 = none)
    burst_ms: float = 0.0  # how long each burst drops everything
    queue_ms: float = 200.0  # drop-tail queue, as time at the line rate


@dataclass
class LinkCounters:
    sent: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_outage: int = 0
    bytes_sent: int = 0


@dataclass
class Link:
    """One direction: decides when (or whether) a datagram leaves."""

    impairment: Impairment
    rng: random.Random
    clock: Callable[[], float] = time.monotonic
    outage_until: float = 0.0
    counters: LinkCounters = field(default_factory=LinkCounters)
    _line_free_at: float = 0.0
    _last_departure: float = 0.0
    _burst_until: float = 0.0
    _next_burst_at: float = 0.0

    def departure(self, size: int) -> float | None:
        """The time the datagram arrives on the other side, or None if it is lost."""
        now = self.clock()
        imp = self.impairment
        if now < self.outage_until:
            self.counters.dropped_outage += 1
            return None
        if imp.burst_every_s > 0:
            if self._next_burst_at == 0.0:
                self._next_burst_at = now + self.rng.expovariate(1 / imp.burst_every_s)
            if now >= self._next_burst_at:
                self._burst_until = now + imp.burst_ms / 1000
                self._next_burst_at = self._burst_until + self.rng.expovariate(
                    1 / imp.burst_every_s
                )
            if now < self._burst_until:
                self.counters.dropped_loss += 1
                return None
        if imp.loss > 0 and self.rng.random() < imp.loss:
            self.counters.dropped_loss += 1
            return None
        start = max(now, self._line_free_at)
        if imp.rate_kbps > 0:
            if start - now > imp.queue_ms / 1000:
                self.counters.dropped_queue += 1
                return None
            self._line_free_at = start + (size + UDP_IP_OVERHEAD) * 8 / (imp.rate_kbps * 1000)
            start = self._line_free_at
        jitter = self.rng.uniform(-imp.jitter_ms, imp.jitter_ms) if imp.jitter_ms else 0.0
        arrive = start + max(0.0, imp.delay_ms + jitter) / 1000
        # A line keeps the order of what it carries.
        arrive = max(arrive, self._last_departure)
        self._last_departure = arrive
        self.counters.sent += 1
        self.counters.bytes_sent += size
        return arrive


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, client: tuple[str, int]) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] = []  # what came before the socket was open (bounded)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.forward(self.relay.down, data, self.relay.listener, self.client)


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.relay.from_client(data, addr)


class Relay:
    """Listens on `listen`, forwards to `target`; `up` is client→server, `down` back."""

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        up: Impairment | None = None,
        down: Impairment | None = None,
        seed: int = 17,
    ) -> None:
        self.listen_addr = listen
        self.target = target
        rng = random.Random(seed)
        self.up = Link(up or Impairment(), random.Random(rng.random()))
        self.down = Link(down or Impairment(), random.Random(rng.random()))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listener: asyncio.DatagramTransport | None = None
        self.upstreams: dict[tuple[str, int], _Upstream] = {}
        self.refused_clients = 0

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        transport, _ = await self.loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=self.listen_addr
        )
        self.listener = transport

    def close(self) -> None:
        for upstream in self.upstreams.values():
            if upstream.transport:
                upstream.transport.close()
        self.upstreams.clear()
        if self.listener:
            self.listener.close()

    def set_impairment(self, up: Impairment, down: Impairment) -> None:
        """Change the link while the call runs (queues already scheduled still leave)."""
        self.up.impairment = up
        self.down.impairment = down

    def cut(self, seconds: float) -> None:
        """Drop everything, both ways, for `seconds` from now."""
        until = time.monotonic() + seconds
        self.up.outage_until = until
        self.down.outage_until = until

    def from_client(self, data: bytes, addr: tuple[str, int]) -> None:
        upstream = self.upstreams.get(addr)
        if upstream is None:
            if len(self.upstreams) >= MAX_CLIENTS or self.loop is None:
                self.refused_clients += 1
                return
            upstream = _Upstream(self, addr)
            self.upstreams[addr] = upstream
            self.loop.create_task(self._open(upstream))
        if upstream.transport is None:
            if len(upstream.pending) < 16:
                upstream.pending.append(data)
            return
        self.forward(self.up, data, upstream.transport, self.target)

    async def _open(self, upstream: _Upstream) -> None:
        assert self.loop is not None
        await self.loop.create_datagram_endpoint(
            lambda: upstream, local_addr=(self.listen_addr[0], 0)
        )
        for data in upstream.pending:
            self.forward(self.up, data, upstream.transport, self.target)
        upstream.pending.clear()

    def forward(
        self,
        link: Link,
        data: bytes,
        transport: asyncio.DatagramTransport | None,
        dest: tuple[str, int],
    ) -> None:
        if transport is None or self.loop is None:
            return
        at = link.departure(len(data))
        if at is None:
            return
        delay = at - time.monotonic()
        if delay <= 0:
            transport.sendto(data, dest)
        else:
            self.loop.call_later(delay, _send, transport, data, dest)

    def counters(self) -> dict[str, dict[str, int]]:
        return {"up": vars(replace(self.up.counters)), "down": vars(replace(self.down.counters))}


def _send(transport: asyncio.DatagramTransport, data: bytes, dest: tuple[str, int]) -> None:
    if not transport.is_closing():
        transport.sendto(data, dest)
