"""Prometheus metrics: what the code counts, and what is read from live state at scrape.

Other domains record through the small functions here (`record_escalation`,
`record_login_failure`, ...), never through prometheus_client directly, so the metric
names and labels stay in one file (docs/operations.md lists them with alert rules).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "dari_http_requests_total",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "dari_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
SOCKETS_OPEN = Gauge(
    "dari_websockets_open",
    "WebSocket sessions open on this process, by route template",
    ["route"],
    multiprocess_mode="livesum",
)
SOCKET_SESSIONS = Counter(
    "dari_websocket_sessions_total", "WebSocket sessions ended, by route template", ["route"]
)
CALLS_JOINED = Counter(
    "dari_call_joins_total", "Participants who joined a call, by kind (user, guest)", ["kind"]
)
CALL_RTT = Histogram(
    "dari_call_rtt_ms",
    "Round-trip time reported by call participants (ms)",
    buckets=(25, 50, 100, 150, 200, 300, 500, 1000, 2000),
)
CALL_LOSS = Histogram(
    "dari_call_packet_loss_percent",
    "Packet loss reported by call participants (%)",
    buckets=(0.5, 1, 2, 5, 10, 20, 50),
)
CALL_BITRATE = Histogram(
    "dari_call_bitrate_kbps",
    "Receive bitrate reported by call participants (kbit/s)",
    buckets=(32, 64, 128, 256, 512, 1000, 2000, 4000),
)
NOTE_UPDATES = Counter("dari_note_updates_total", "Shared-note operations applied")
OUTBOX_LAG = Histogram(
    "dari_outbox_lag_seconds",
    "From a notification's creation to its push over the user channel",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
ESCALATIONS = Counter(
    "dari_escalations_total",
    "Consults or urgent rings escalated, by kind (overdue, urgent_ring, ...)",
    ["kind"],
)
LOGIN_FAILURES = Counter(
    "dari_login_failures_total", "Refused logins, by reason (invalid, throttled)", ["reason"]
)


def record_escalation(kind: str = "overdue", count: int = 1) -> None:
    """Count escalations (the response clocks and the urgent ring call this)."""
    if count > 0:
        ESCALATIONS.labels(kind=kind).inc(count)


def record_login_failure(reason: str) -> None:
    LOGIN_FAILURES.labels(reason=reason).inc()


def record_note_update() -> None:
    NOTE_UPDATES.inc()


def record_call_join(kind: str) -> None:
    CALLS_JOINED.labels(kind=kind if kind in {"user", "guest"} else "other").inc()


def record_call_quality(
    *, rtt_ms: float | None, loss_pct: float | None, bitrate_kbps: float | None
) -> None:
    if rtt_ms is not None:
        CALL_RTT.observe(rtt_ms)
    if loss_pct is not None:
        CALL_LOSS.observe(loss_pct)
    if bitrate_kbps is not None:
        CALL_BITRATE.observe(bitrate_kbps)


def record_outbox_lag(seconds: Iterable[float]) -> None:
    for value in seconds:
        OUTBOX_LAG.observe(max(0.0, value))


class RoomSource(Protocol):
    """What the scrape reads from a running signaling service (rooms open here)."""

    def open_rooms(self) -> int: ...


class LiveCollector(Collector):
    """Rooms open on this process, read at scrape time from the attached services."""

    def __init__(self) -> None:
        self._sources: weakref.WeakSet[Any] = weakref.WeakSet()

    def attach(self, source: RoomSource) -> None:
        self._sources.add(source)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rooms = GaugeMetricFamily(
            "dari_rooms_open", "Call rooms with a participant on this process"
        )
        rooms.add_metric([], float(sum(source.open_rooms() for source in list(self._sources))))
        yield rooms


LIVE = LiveCollector()
REGISTRY.register(LIVE)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric; all workers' when PROMETHEUS_MULTIPROC_DIR is set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
