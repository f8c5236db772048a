"""One WebSocket as rooms and the user channel see it: sending never fails the sender.

In the manner of python-websockets' `broadcast()`: whoever fans a frame out to
many connections must not stop at one that has gone. A dead socket is noticed
by its own receive loop (the endpoint), which then cleans up.
"""

from __future__ import annotations

import logging
from typing import Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

log = logging.getLogger("dari.signaling.connection")

# What a send or close on a socket that has gone raises: starlette turns the
# server's OSError into WebSocketDisconnect(1006), and raises RuntimeError
# (WebSocketDisconnected) once a close was sent; uvicorn raises RuntimeError for
# a message after its close and ClientDisconnected (an OSError) on a lost peer.
SOCKET_GONE: tuple[type[Exception], ...] = (WebSocketDisconnect, RuntimeError, OSError)


class Connection(Protocol):
    """Where a peer's frames go; neither method raises because the socket has gone."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class WebSocketConnection:
    """A starlette WebSocket as a `Connection`."""

    __slots__ = ("websocket",)

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def send_text(self, data: str) -> None:
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        try:
            await self.websocket.send_text(data)
        except SOCKET_GONE as error:
            log.debug("send on a gone socket: %s", type(error).__name__)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        if self.websocket.application_state != WebSocketState.CONNECTED:
            return
        try:
            await self.websocket.close(code, reason)
        except SOCKET_GONE as error:
            log.debug("close on a gone socket: %s", type(error).__name__)
