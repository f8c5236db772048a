"""A small WebSocket client for tests: connect, receive with a timeout, wait for close."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

TIMEOUT = 10.0
# Every socket a test opens, closed by the autouse fixture in conftest.py before the
# test's event loop ends (a socket left to the garbage collector is a ResourceWarning).
OPEN: list[ClientConnection] = []


async def open_ws(
    base: str,
    path: str = "/ws/room",
    *,
    cookie: str | None = None,
    origin: str | None | bool = True,
) -> ClientConnection:
    """origin=True: the server's own origin (a browser on our page); None: no Origin header."""
    url = base.replace("http://", "ws://") + path
    headers = {"Cookie": f"dari_session={cookie}"} if cookie else {}
    if origin is True:
        origin = base
    ws = await connect(
        url,
        origin=Origin(origin) if isinstance(origin, str) and origin else None,
        additional_headers=headers,
        open_timeout=TIMEOUT,
        max_size=2**21,
    )
    OPEN.append(ws)
    return ws


async def close_all() -> None:
    while OPEN:
        ws = OPEN.pop()
        try:
            await asyncio.wait_for(ws.close(), 5)
        except TimeoutError:  # the server never answered the close: drop the connection
            ws.transport.abort()


async def send(ws: ClientConnection, **frame: Any) -> None:
    """Send a frame; a socket the server already closed is not an error here."""
    try:
        await ws.send(json.dumps(frame))
    except ConnectionClosed:
        pass


async def recv(ws: ClientConnection, wait: float = TIMEOUT) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait))
    return data


async def recv_type(ws: ClientConnection, kind: str, wait: float = TIMEOUT) -> dict[str, Any]:
    """The next frame of this type, skipping others (pongs, knocks...)."""
    async with asyncio.timeout(wait):
        while True:
            frame = await recv(ws, wait)
            if frame["type"] == kind:
                return frame


async def close_code(ws: ClientConnection, wait: float = TIMEOUT) -> int | None:
    """Wait until the server closes; the close code (frames before it are dropped)."""
    try:
        async with asyncio.timeout(wait):
            while True:
                await ws.recv()
    except ConnectionClosed:
        pass
    return ws.close_code


async def no_frame(ws: ClientConnection, wait: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), wait)
    except TimeoutError:
        return True
    return False


async def dial(url: str, **options: Any) -> ClientConnection:
    """connect() to a full ws:// URL, closed at the end of the test."""
    ws = await connect(url, **options)
    OPEN.append(ws)
    return ws
