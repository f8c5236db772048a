"""The notes gate's shutdown waits for database work that has started, never for work
whose thread had not started (a CI run once stalled 30 s at every later test-app
shutdown on a hand-over whose event loop ended before its thread ran)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine

from server.notes.gate import ServerNoteGate
from server.settings import Settings


def _gate(settings: Settings) -> ServerNoteGate:
    return ServerNoteGate(settings, create_engine("sqlite://"))


async def test_shutdown_waits_for_work_that_has_started(settings: Settings) -> None:
    gate = _gate(settings)
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def work() -> str:
        started.set()
        release.wait(5)
        finished.append("done")
        return "done"

    pending = asyncio.ensure_future(gate._in_thread(work))
    assert await asyncio.to_thread(started.wait, 5)
    closing = threading.Thread(target=gate.close)
    closing.start()
    await asyncio.sleep(0.2)
    assert closing.is_alive()  # waiting for the started work
    release.set()
    assert await pending == "done"
    await asyncio.to_thread(closing.join, 5)
    assert not closing.is_alive()
    assert finished == ["done"]


async def test_work_not_yet_started_at_shutdown_neither_runs_nor_holds_it_up(
    settings: Settings,
) -> None:
    gate = _gate(settings)
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    blocker = threading.Event()
    ran: list[str] = []
    try:
        busy = loop.run_in_executor(executor, blocker.wait, 5)  # the only worker, busy
        queued = asyncio.ensure_future(gate._in_thread(lambda: ran.append("ran")))
        await asyncio.sleep(0.05)
        begun = time.monotonic()
        gate.close()
        assert time.monotonic() - begun < 1  # nothing started: nothing to wait for
        blocker.set()
        await busy
        with pytest.raises(RuntimeError, match="closed before this work started"):
            await queued
        assert ran == []
    finally:
        blocker.set()
        executor.shutdown(wait=True)


async def test_work_handed_over_after_a_shutdown_runs(settings: Settings) -> None:
    """Tests start one app several times: the gate serves again after a close."""
    gate = _gate(settings)
    gate.close()
    assert await gate._in_thread(lambda: 42) == 42
    gate.close()
