"""An in-memory Gatekeeper and an in-process server, for fast tests of the service itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from signaling.app import SignalingService, standalone_app
from signaling.gate import Admission, Identity, QualityReport, SignalingConfig
from signaling.serving import uvicorn_options


@dataclass
class FakeGate:
    """Token "user:<id>" is that user; "guest:<name>" a guest; room "closed" admits nobody."""

    notifications: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    joined: list[tuple[str, str]] = field(default_factory=list)
    left: list[tuple[str, str, bool]] = field(default_factory=list)
    quality: list[tuple[str, QualityReport]] = field(default_factory=list)

    async def authenticate(self, cookie: str | None, token: str | None) -> Identity | None:
        value = token or cookie
        if not value:
            return None
        kind, _, rest = value.partition(":")
        if kind == "user" and rest.isdigit():
            return Identity(key=value, name=f"User {rest}", user_id=int(rest))
        if kind == "guest":
            return Identity(key=value, name=rest, kind="guest")
        return None

    async def admission(self, identity: Identity, room: str) -> Admission:
        if room == "closed":
            return Admission.DENY
        return Admission.LOBBY if identity.kind == "guest" else Admission.ALLOW

    async def ice_servers(self, identity: Identity) -> list[dict[str, Any]]:
        return []

    async def call_joined(self, room: str, peer_id: str, identity: Identity) -> None:
        self.joined.append((room, peer_id))

    async def call_left(self, room: str, peer_id: str, room_empty: bool) -> None:
        self.left.append((room, peer_id, room_empty))

    async def call_quality(self, room: str, peer_id: str, report: QualityReport) -> None:
        self.quality.append((peer_id, report))

    def add_notification(self, user_id: int, kind: str) -> int:
        new_id = len(self.notifications) + 1
        row = {"id": new_id, "kind": kind, "payload": {}, "created_at": "2026-11-29T00:00:00+00:00"}
        self.notifications.append((user_id, row))
        return new_id

    async def notifications_since(self, user_id: int, after_id: int) -> list[dict[str, Any]]:
        return [row for uid, row in self.notifications if uid == user_id and row["id"] > after_id]

    async def notifications_after(
        self, after_id: int, user_ids: list[int]
    ) -> list[tuple[int, dict[str, Any]]]:
        return [
            (uid, row)
            for uid, row in self.notifications
            if uid in user_ids and row["id"] > after_id
        ]

    async def latest_notification_id(self) -> int:
        return len(self.notifications)

    async def notifications_window(
        self, floor: int, user_ids: list[int], settled_before: float
    ) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        # Rows here are visible as soon as they are added: all of them are settled.
        return len(self.notifications), await self.notifications_after(floor, user_ids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve(
    gate: FakeGate, config: SignalingConfig, broker_url: str = "memory://"
) -> AsyncIterator[tuple[str, SignalingService]]:
    """`dari signaling`'s app under uvicorn in this event loop; yields (ws base URL, service)."""
    service = SignalingService(gate, config, broker_url)
    async with serve_app(standalone_app(service)) as base:
        yield f"{base}/ws", service


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp) -> AsyncIterator[str]:
    """Any ASGI app under uvicorn as Dari serves it, in this event loop; yields its
    ws://127.0.0.1:PORT base."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_options())
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
                await asyncio.sleep(0.02)
        yield f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            # A shutdown that hangs: say where every task of the loop waits.
            for other in asyncio.all_tasks():
                other.print_stack(file=sys.stderr)
            raise
