"""What signaling needs from the rest of Dari, as a small interface.

Signaling never imports the server's internals: the server hands it an object
that satisfies `Gatekeeper` (server/calls/gatekeeper.py), and tests may hand it
a fake. Every method is async; implementations run database work in a thread
with a short-lived session, so no connection holds a DB session open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Identity:
    """Who is on a connection; `key` is stable across tabs (second tab replaces the first)."""

    key: str
    name: str
    kind: Literal["user", "guest"] = "user"
    user_id: int | None = None
    # Set when authenticated by a join token: the one room that token opens.
    room: str | None = None
    # The login session behind this connection (an opaque id): when it ends, the
    # server says so on the bus and every socket of it is closed (bus.SessionEnded).
    session: str | None = None


class Admission(StrEnum):
    ALLOW = "allow"
    LOBBY = "lobby"  # a guest: waits until a participant admits them
    DENY = "deny"


@dataclass(frozen=True)
class QualityReport:
    bitrate_kbps: float
    rtt_ms: float
    loss_pct: float


@dataclass
class SignalingConfig:
    max_peers: int = 4
    resume_seconds: float = 30.0
    heartbeat_seconds: float = 15.0
    presence_ttl_seconds: float = 15.0
    presence_refresh_seconds: float = 5.0
    # Each process's heartbeat in the broker: written every `node_beat_seconds`,
    # expiring after `node_ttl_seconds`; another process serving a room notices a
    # dead one within ttl + beat and marks its peers away (docs/signaling.md).
    node_beat_seconds: float = 1.0
    node_ttl_seconds: float = 3.0
    # Where a shared broker keeps this deployment's keys and channels (two deployments,
    # or two test runs, can share one Redis).
    broker_prefix: str = "dari:sig:"
    # Direct links between the processes of a shared broker (signaling/links.py): a
    # frame for one peer on another process goes there straight, not through Redis.
    # Each process listens on `link_host`:`link_port` (0: any free port) and tells
    # the others `link_advertise` (default: `link_host`) with its heartbeat. Off with
    # no `link_secret` (the deployment's secret: a link proves it knows it) or no
    # `link_host`.
    link_secret: str = field(default="", repr=False)
    link_host: str = "127.0.0.1"
    link_port: int = 0
    link_advertise: str = ""
    join_timeout_seconds: float = 10.0
    rate_per_second: float = 50.0
    burst: float = 100.0
    max_bad_frames: int = 10
    allowed_origins: list[str] = field(default_factory=list)
    notification_poll_seconds: float = 1.0
    # How far behind its newest row the user channel re-reads the outbox: longer than
    # a transaction that writes a notification may last (server/notifications/service.py).
    notification_window_seconds: float = 30.0
    echo_max_sessions: int = 2
    echo_max_seconds: float = 120.0


class Gatekeeper(Protocol):
    async def authenticate(self, cookie: str | None, token: str | None) -> Identity | None:
        """The identity behind a session cookie or a signed join token, or None."""
        ...

    async def admission(self, identity: Identity, room: str) -> Admission:
        """May this identity enter the room (a consult's public id)?"""
        ...

    async def ice_servers(self, identity: Identity) -> list[dict[str, Any]]:
        """STUN/TURN servers for this peer, with freshly minted TURN credentials."""
        ...

    async def call_joined(self, room: str, peer_id: str, identity: Identity) -> None: ...

    async def call_left(self, room: str, peer_id: str, room_empty: bool) -> None: ...

    async def call_quality(self, room: str, peer_id: str, report: QualityReport) -> None: ...

    async def notifications_since(self, user_id: int, after_id: int) -> list[dict[str, Any]]:
        """Outbox rows for one user newer than after_id (as_dict form), oldest first."""
        ...

    async def notifications_after(
        self, after_id: int, user_ids: list[int]
    ) -> list[tuple[int, dict[str, Any]]]:
        """(user_id, row) for these users newer than after_id, oldest first."""
        ...

    async def latest_notification_id(self) -> int: ...

    async def notifications_window(
        self, floor: int, user_ids: list[int], settled_before: float
    ) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        """(settled, rows). First `settled`: the newest id written before `settled_before`
        (unix time), at or below which every row has committed or rolled back; then
        (user_id, row) for these users above `floor`, oldest first, all of them."""
        ...
