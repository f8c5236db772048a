"""The direct lane (signaling/serving.py): a claimed socket's frames past the ASGI layers,
under real uvicorn on 127.0.0.1 as Dari serves it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed

from signaling.connection import SOCKET_GONE
from signaling.gate import SignalingConfig
from signaling.serving import HIGH_WATER, LANE_EXTENSION, DirectSocket, claim
from tests.signaling.client import close_code, dial, recv_type, send
from tests.signaling.fakes import FakeGate, serve, serve_app

BURST = 100


def _app(seen: dict[str, Any]) -> Starlette:
    async def burst(websocket: WebSocket) -> None:
        """Reads nothing for a while (the client sends a burst meanwhile), then all of it."""
        await websocket.accept()
        socket = claim(websocket)
        assert isinstance(socket, DirectSocket)
        protocol = websocket.scope["extensions"][LANE_EXTENSION]
        await asyncio.sleep(0.5)
        seen["paused_while_unread"] = protocol.read_paused
        texts = [(await socket.receive())["text"] for _ in range(BURST)]
        seen["paused_after_reading"] = protocol.read_paused
        await socket.send_text(json.dumps(texts))
        await socket.close(1000)

    async def deadline(websocket: WebSocket) -> None:
        """Counts frames until 0.3 s pass without one."""
        await websocket.accept()
        socket = claim(websocket)
        assert isinstance(socket, DirectSocket)
        count = 0
        try:
            while True:
                await socket.receive_within(0.3)
                count += 1
        except TimeoutError:
            await socket.send_text(f"timeout after {count}")
            await socket.close(4408)

    async def gone(websocket: WebSocket) -> None:
        """Sends after the client has gone."""
        await websocket.accept()
        socket = claim(websocket)
        message = await socket.receive()
        seen["disconnect"] = message["type"]
        try:
            await socket.send_text("too late")
        except Exception as error:
            seen["error"] = error

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        socket = claim(websocket)
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                seen["close"] = message.get("code")
                return
            await socket.send_text(message["text"])

    return Starlette(
        routes=[
            WebSocketRoute("/burst", burst),
            WebSocketRoute("/deadline", deadline),
            WebSocketRoute("/gone", gone),
            WebSocketRoute("/echo", echo),
        ]
    )


async def test_a_burst_pauses_reading_and_arrives_whole_and_in_order() -> None:
    seen: dict[str, Any] = {}
    async with serve_app(_app(seen)) as base:
        ws = await dial(base + "/burst")
        for n in range(BURST):
            await ws.send(f"frame {n}")
        texts = json.loads(await ws.recv())
        assert texts == [f"frame {n}" for n in range(BURST)]
        # Reading paused once HIGH_WATER frames waited unread, and resumed when read.
        assert BURST > HIGH_WATER
        assert seen == {"paused_while_unread": True, "paused_after_reading": False}
        assert await close_code(ws) == 1000


async def test_the_receive_deadline_moves_with_each_frame_and_fires_on_silence() -> None:
    async with serve_app(_app({})) as base:
        ws = await dial(base + "/deadline")
        for n in range(6):  # 0.6 s in all: twice the deadline, but never 0.3 s silent
            await ws.send(f"frame {n}")
            await asyncio.sleep(0.1)
        last = time.monotonic()
        assert await ws.recv() == "timeout after 6"
        assert time.monotonic() - last >= 0.15  # fired on the silence, not before
        assert await close_code(ws) == 4408


async def test_a_send_after_the_client_left_raises_socket_gone() -> None:
    seen: dict[str, Any] = {}
    async with serve_app(_app(seen)) as base:
        ws = await dial(base + "/gone")
        await ws.close()
        async with asyncio.timeout(5):
            while "error" not in seen:  # noqa: ASYNC110 (the endpoint records it)
                await asyncio.sleep(0.02)
        assert seen["disconnect"] == "websocket.disconnect"
        assert isinstance(seen["error"], SOCKET_GONE)


async def test_invalid_utf8_in_a_text_frame_closes_with_1007() -> None:
    seen: dict[str, Any] = {}
    async with serve_app(_app(seen)) as base:
        ws = await dial(base + "/echo")
        await ws.send("fine")
        assert await ws.recv() == "fine"
        await ws.send(b"\xff\xfe", text=True)
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            pass
        assert ws.close_code == 1007
        async with asyncio.timeout(5):
            while "close" not in seen:  # noqa: ASYNC110 (the endpoint records it)
                await asyncio.sleep(0.02)
        assert seen["close"] == 1007


async def test_dari_sockets_take_the_lane_under_uvicorn() -> None:
    config = SignalingConfig()
    async with serve(FakeGate(), config) as (base, service):
        a = await dial(base + "/room")
        await send(a, type="join", room="r", token="user:1")
        a_id = (await recv_type(a, "welcome"))["peer_id"]
        b = await dial(base + "/room")
        await send(b, type="join", room="r", token="user:2")
        await recv_type(b, "welcome")
        await send(b, type="offer", to=a_id, sdp="v=0")
        assert (await recv_type(a, "offer"))["sdp"] == "v=0"
        lanes = [ws.scope["extensions"][LANE_EXTENSION].lane for ws in service.sockets]
        assert len(lanes) == 2
        assert all(isinstance(lane, DirectSocket) for lane in lanes)
