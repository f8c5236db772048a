"""The service with a fake gatekeeper: timers, presence, shutdown, user channel."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from signaling.gate import SignalingConfig
from tests.signaling.client import close_code, dial, no_frame, recv, recv_type, send
from tests.signaling.fakes import FakeGate, serve

FAST = SignalingConfig(
    resume_seconds=0.5,
    heartbeat_seconds=0.5,
    presence_ttl_seconds=0.6,
    presence_refresh_seconds=0.2,
    notification_poll_seconds=0.1,
)


async def joined(
    base: str, token: str, room: str = "room-1"
) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await dial(base + "/room", open_timeout=5)
    await send(ws, type="join", room=room, token=token)
    return ws, await recv_type(ws, "welcome")


async def test_peer_that_does_not_return_is_announced_after_the_grace_period() -> None:
    gate = FakeGate()
    async with serve(gate, FAST) as (base, _):
        a, _ = await joined(base, "user:1")
        b, welcome_b = await joined(base, "user:2")
        await recv_type(a, "peer-joined")
        b.transport.abort()
        # Within the grace period the room only hears that it is away (reconnecting)...
        away = await recv(a)
        assert away["type"] == "peer-away" and away["peer_id"] == welcome_b["peer_id"]
        await send(a, type="ping")
        assert (await recv(a))["type"] == "pong"
        # ...after it, the room hears a timeout.
        left = await recv_type(a, "peer-left", wait=5)
        assert left["peer_id"] == welcome_b["peer_id"] and left["reason"] == "timeout"
        await a.close()
        await asyncio.sleep(0.2)
    # The call record hears both leaves; the last one finds the room empty.
    assert ("room-1", welcome_b["peer_id"], False) in gate.left
    assert gate.left[-1][2] is True


async def test_idle_connection_is_closed_after_missed_heartbeats() -> None:
    async with serve(FakeGate(), FAST) as (base, _):
        ws, _ = await joined(base, "user:1")
        assert await close_code(ws, wait=5) == 4408


async def test_shutdown_closes_every_connection() -> None:
    config = SignalingConfig(heartbeat_seconds=30)
    async with serve(FakeGate(), config) as (base, _):
        ws, _ = await joined(base, "user:1")
        user = await dial(base + "/user", open_timeout=5)
        await send(user, type="subscribe", token="user:1")
    # uvicorn closes sockets with 1012 (service restart) before our lifespan's 1001.
    assert await close_code(ws) in {1001, 1012}
    assert await close_code(user) in {1001, 1012}


async def test_denied_room_and_missing_identity_get_4403() -> None:
    async with serve(FakeGate(), FAST) as (base, _):
        ws = await dial(base + "/room", open_timeout=5)
        await send(ws, type="join", room="closed", token="user:1")
        assert await close_code(ws) == 4403
        ws = await dial(base + "/room", open_timeout=5)
        await send(ws, type="join", room="room-1", token="nobody")
        assert await close_code(ws) == 4403


async def test_user_channel_catches_up_then_streams_live() -> None:
    gate = FakeGate()
    gate.add_notification(7, "consult.accepted")
    seen = gate.add_notification(7, "message.received")
    gate.add_notification(8, "not.for.seven")
    missed = gate.add_notification(7, "consult.urgent")
    config = SignalingConfig(notification_poll_seconds=0.1, heartbeat_seconds=30)
    async with serve(gate, config) as (base, _):
        ws = await dial(base + "/user", open_timeout=5)
        await send(ws, type="subscribe", after_id=seen, token="user:7")
        caught_up = await recv(ws)
        assert caught_up["type"] == "notification" and caught_up["id"] == missed
        live = gate.add_notification(7, "consult.ringing")
        gate.add_notification(8, "still.not.for.seven")
        frame = await recv(ws, wait=5)
        assert frame["id"] == live and frame["kind"] == "consult.ringing"
        assert await no_frame(ws, 0.4)
        await ws.close()


async def test_quality_reports_reach_the_gate() -> None:
    gate = FakeGate()
    async with serve(gate, SignalingConfig(heartbeat_seconds=30)) as (base, _):
        ws, welcome = await joined(base, "user:1")
        await send(ws, type="stats", bitrate_kbps=480.5, rtt_ms=62, loss_pct=0.5)
        await send(ws, type="ping")
        await recv_type(ws, "pong")
        await asyncio.sleep(0.1)
        assert gate.quality and gate.quality[0][0] == welcome["peer_id"]
        assert gate.quality[0][1].bitrate_kbps == 480.5
        await ws.close()


async def test_concurrent_joins_never_exceed_the_room_limit() -> None:
    config = SignalingConfig(max_peers=4, heartbeat_seconds=30)
    async with serve(FakeGate(), config) as (base, _):
        sockets = [await dial(base + "/room", open_timeout=5) for _ in range(7)]
        await asyncio.gather(
            *(send(ws, type="join", room="busy", token=f"user:{n}") for n, ws in enumerate(sockets))
        )
        firsts = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for ws in sockets]
        assert sum(1 for frame in firsts if frame["type"] == "welcome") == 4
        assert sum(1 for frame in firsts if frame.get("code") == "room_full") == 3
        for ws in sockets:
            await ws.close()


@pytest.mark.redis
async def test_a_dead_process_leaves_no_ghost_peer() -> None:
    """Process A stops refreshing and beating (it died); process B marks A's peer away,
    then, its resume window over, announces it left. (A process that still beats is
    never swept: tests/signaling/test_presence_owner.py.)"""
    url = "redis://127.0.0.1:6379/5"
    gate = FakeGate()
    async with serve(gate, FAST, url) as (base_b, _):
        config_a = SignalingConfig(
            heartbeat_seconds=30, presence_ttl_seconds=1, presence_refresh_seconds=0.3
        )
        async with serve(FakeGate(), config_a, url) as (base_a, svc_a):
            ghost, ghost_welcome = await joined(base_a, "user:1", room="ghost-room")
            alive, welcome = await joined(base_b, "user:2", room="ghost-room")
            assert [p["peer_id"] for p in welcome["peers"]] == [ghost_welcome["peer_id"]]
            # Simulate a crash: A's refresher and heartbeat stop, nothing is cleaned up
            # or announced.
            hub = svc_a.hub
            assert hub._refresher is not None and hub._heartbeat is not None
            hub._refresher.cancel()
            hub._heartbeat.cancel()
            left = None
            async with asyncio.timeout(10):
                while left is None:
                    await send(alive, type="ping")
                    frame = await recv(alive)
                    await asyncio.sleep(0.1)
                    if frame["type"] == "peer-left":
                        left = frame
            assert left["peer_id"] == ghost_welcome["peer_id"] and left["reason"] == "timeout"
            await ghost.close()
        await alive.close()
