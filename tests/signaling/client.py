"""A small WebSocket client for tests: connect, receive with a timeout, wait for close."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10.0


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
    real_origin = base if origin is True else (origin or None)
    return await connect(
        url,
        origin=real_origin,  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=TIMEOUT,
        max_size=2**21,
    )


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
