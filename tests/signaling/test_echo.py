"""The pre-call echo peer, tested with an aiortc client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from sqlmodel import Session
from websockets.asyncio.client import ClientConnection

from signaling.gate import SignalingConfig
from tests.signaling.client import close_code, dial, recv, send
from tests.signaling.factories import join_token, make_call
from tests.signaling.fakes import FakeGate, serve

pytestmark = pytest.mark.slow


class EchoClient:
    def __init__(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

        self.pc: Any = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.tracks = [AudioStreamTrack(), VideoStreamTrack()]
        for track in self.tracks:
            self.pc.addTrack(track)
        self.frames = {"audio": 0, "video": 0}
        self.tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.create_task(self.consume(track)))

    async def consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):  # the track ended
            while True:
                await track.recv()
                self.frames[track.kind] += 1

    async def offer(self) -> str:
        await asyncio.wait_for(self.pc.setLocalDescription(await self.pc.createOffer()), 15)
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for track in self.tracks:
            track.stop()
        await asyncio.wait_for(self.pc.close(), 5)


async def negotiate(ws: ClientConnection, client: EchoClient, token: str | None) -> dict[str, Any]:
    from aiortc import RTCSessionDescription

    await send(ws, type="offer", sdp=await client.offer(), token=token)
    answer = await recv(ws, wait=20)
    assert answer["type"] == "answer", answer
    # The echo peer does not trickle: its answer is complete.
    assert "a=candidate:" in answer["sdp"]
    await asyncio.wait_for(
        client.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer")), 15
    )
    return answer


async def test_echo_peer_returns_our_media(live_server: str, db: Session) -> None:
    call = make_call(db)
    ws = await dial(live_server.replace("http://", "ws://") + "/ws/echo", open_timeout=10)
    client = EchoClient()
    try:
        await negotiate(ws, client, join_token(call.gp, call.room))
        async with asyncio.timeout(20):
            while client.frames["video"] < 5 or client.frames["audio"] < 5:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert client.pc.connectionState == "connected"
        await send(ws, type="ping", ts=1)
        assert (await recv(ws))["type"] == "pong"
    finally:
        await ws.close()
        await client.close()


async def test_echo_needs_a_logged_in_user(live_server: str) -> None:
    ws = await dial(live_server.replace("http://", "ws://") + "/ws/echo", open_timeout=10)
    await send(ws, type="offer", sdp="v=0")
    assert await close_code(ws) == 4403


async def test_echo_sessions_are_limited_and_time_limited() -> None:
    config = SignalingConfig(echo_max_sessions=1, echo_max_seconds=2, heartbeat_seconds=30)
    async with serve(FakeGate(), config) as (base, service):
        first = await dial(base + "/echo", open_timeout=5)
        client = EchoClient()
        try:
            await negotiate(first, client, "user:1")
            second = await dial(base + "/echo", open_timeout=5)
            await second.send(json.dumps({"type": "offer", "sdp": "v=0", "token": "user:2"}))
            assert await close_code(second) == 1013
            # The first one ends by itself when its time is up, freeing the slot.
            assert await close_code(first, wait=10) == 1000
            await asyncio.sleep(0.2)
            assert not service.echo.sessions
        finally:
            await client.close()
