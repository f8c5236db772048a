"""The per-connection send queue (signaling/connection.py): its rules, on a fake socket
whose sends wait as uvicorn's do while the transport's buffer is over its high-water mark."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocketState

from signaling.connection import (
    SLOW_CLIENT,
    TRANSPORT_EXTENSION,
    SendLimits,
    WebSocketConnection,
)


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class _Socket:
    """Sends complete at once while `writable` is set, else wait for it (uvicorn's rule)."""

    def __init__(self) -> None:
        self.application_state = WebSocketState.CONNECTED
        self.writable = asyncio.Event()
        self.writable.set()
        self.sent: list[str] = []
        self.closed: list[int] = []
        self.transport = _Transport()
        self.scope: dict[str, Any] = {"extensions": {TRANSPORT_EXTENSION: self.transport}}

    async def send_text(self, data: str) -> None:
        await self.writable.wait()
        if self.application_state != WebSocketState.CONNECTED:
            raise RuntimeError("closed")
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.writable.wait()
        self.closed.append(code)
        self.application_state = WebSocketState.DISCONNECTED


async def _settle() -> None:
    """Let the writer task run its steps."""
    for _ in range(5):
        await asyncio.sleep(0)


def _conn(**limits: Any) -> tuple[_Socket, WebSocketConnection]:
    socket = _Socket()
    return socket, WebSocketConnection(socket, SendLimits(**limits))


async def test_fast_path_writes_inline_without_a_task() -> None:
    socket, conn = _conn()
    tasks = len(asyncio.all_tasks())
    await conn.send_text("a")
    # Written before send_text returned, no writer, no new task, nothing queued.
    assert socket.sent == ["a"]
    assert conn.queued == 0 and conn._writer is None
    assert len(asyncio.all_tasks()) == tasks


async def test_a_blocked_send_moves_to_a_writer_and_later_frames_keep_their_order() -> None:
    socket, conn = _conn()
    socket.writable.clear()
    await conn.send_text("a")  # returns although the socket cannot take it
    await conn.send_text("b")
    await conn.send_text("c")
    assert socket.sent == [] and conn.queued == 2 and conn._writer is not None
    socket.writable.set()
    await _settle()
    assert socket.sent == ["a", "b", "c"]
    # Drained: back on the fast path, the writer gone.
    assert conn.queued == 0 and conn._writer is None
    await conn.send_text("d")
    assert socket.sent[-1] == "d"


async def test_past_the_frame_bound_the_client_is_closed_as_too_slow() -> None:
    socket, conn = _conn(max_frames=3, close_grace_seconds=60)
    socket.writable.clear()
    for n in range(4):
        await conn.send_text(str(n))
    assert not conn.closing and conn.queued == 3
    await conn.send_text("4")  # the fourth queued frame is one too many
    assert conn.closing and conn.queued == 0
    await conn.send_text("after")  # dropped: the connection is closing
    socket.writable.set()
    await _settle()
    # The queue was dropped (the frame the writer was waiting to send too); the close went out.
    assert socket.sent == [] and socket.closed == [SLOW_CLIENT]
    assert not socket.transport.aborted


async def test_past_the_byte_bound_the_client_is_closed_as_too_slow() -> None:
    socket, conn = _conn(max_frames=1000, max_bytes=1000, close_grace_seconds=60)
    socket.writable.clear()
    await conn.send_text("x")
    await conn.send_text("y" * 600)
    assert not conn.closing
    await conn.send_text("z" * 600)
    assert conn.closing
    socket.writable.set()
    await _settle()
    assert socket.closed == [SLOW_CLIENT]


async def test_a_client_that_never_reads_is_cut_off_after_the_grace() -> None:
    socket, conn = _conn(max_frames=1, close_grace_seconds=0.05)
    socket.writable.clear()
    for n in range(3):
        await conn.send_text(str(n))
    assert conn.closing
    await asyncio.sleep(0.1)
    assert socket.transport.aborted and socket.closed == []


async def test_close_waits_for_what_is_queued_and_never_blocks_the_caller() -> None:
    socket, conn = _conn(close_grace_seconds=60)
    socket.writable.clear()
    await conn.send_text("a")
    await conn.send_text("b")
    await conn.close(4409, "replaced")  # returns at once
    await conn.send_text("c")  # after close: dropped
    socket.writable.set()
    await _settle()
    assert socket.sent == ["a", "b"] and socket.closed == [4409]


async def test_a_socket_that_goes_while_backlogged_ends_the_writer_quietly() -> None:
    socket, conn = _conn()
    socket.writable.clear()
    await conn.send_text("a")
    await conn.send_text("b")
    socket.application_state = WebSocketState.DISCONNECTED
    socket.writable.set()
    await _settle()
    assert socket.sent == [] and conn._writer is None and conn.queued == 0
