"""Full garbage collections paced by sockets closing (signaling/collector.py): none while
sockets open, one once enough of them have closed, and what a closed socket left in
reference cycles is then gone; the process's own thresholds come back when the last
service stops."""

from __future__ import annotations

import asyncio
import gc
import weakref

from signaling import collector
from signaling.collector import (
    MAX_INTERVAL,
    MIN_CLOSED,
    YOUNG_COLLECTIONS,
    FullCollections,
    full_collection_due,
)
from signaling.gate import SignalingConfig
from tests.signaling.client import close_all, open_ws, recv_type, send
from tests.signaling.fakes import FakeGate, serve


def test_a_full_collection_is_due_after_a_quarter_of_the_sockets_closed() -> None:
    assert not full_collection_due(0, 0, 0.0, 0)
    assert not full_collection_due(MIN_CLOSED - 1, 0, 1.0, 0)  # a few sockets: the floor
    assert full_collection_due(MIN_CLOSED, 0, 1.0, 0)
    assert not full_collection_due(999, 4000, 1.0, 0)  # many open: a quarter of them
    assert full_collection_due(1000, 4000, 1.0, 0)


def test_the_rest_of_the_process_gets_one_at_most_every_interval() -> None:
    busy = YOUNG_COLLECTIONS  # as many as CPython waits for before a full one
    assert full_collection_due(0, 4000, MAX_INTERVAL, busy)
    assert not full_collection_due(0, 4000, MAX_INTERVAL - 1, busy)
    # Idle, however many sockets are open: nothing was promoted that could be garbage.
    assert not full_collection_due(0, 4000, 100 * MAX_INTERVAL, busy - 1)


async def test_sockets_opening_run_no_full_collection_and_closed_ones_are_reclaimed() -> None:
    opened = 600
    async with serve(FakeGate(), SignalingConfig()) as (base, service):
        page = base.removesuffix("/ws").replace("ws://", "http://")  # the page's origin
        assert gc.get_threshold()[2] > 10**6  # automatic full collections are off
        full_before = gc.get_stats()[2]["collections"]
        young_before = gc.get_stats()[1]["collections"]
        sockets = []
        for n in range(opened):
            ws = await open_ws(page, "/ws/user", cookie=f"user:{n + 1}")
            await send(ws, type="subscribe", after_id=0)
            await send(ws, type="ping")
            await recv_type(ws, "pong")
            sockets.append(ws)
        # Young collections ran meanwhile (the default policy would have had its
        # chances at a full one), no full collection did.
        assert gc.get_stats()[1]["collections"] > young_before + 10
        assert gc.get_stats()[2]["collections"] == full_before
        assert len(service.sockets) == opened
        held = [weakref.ref(websocket) for websocket in service.sockets]

        await close_all()
        async with asyncio.timeout(10):
            while service.sockets:  # noqa: ASYNC110 (the service offers no event)
                await asyncio.sleep(0.02)
        # Closed, but some of what they held is in reference cycles: only a full
        # collection frees it, and one is now due (600 closed > MIN_CLOSED).
        assert any(ref() is not None for ref in held)
        assert service.collections.closed == opened
        assert service.collections.collect_if_due()
        assert all(ref() is None for ref in held)
        assert service.collections.closed == 0
        assert not service.collections.collect_if_due()  # nothing closed since
    assert gc.get_threshold()[2] < 10**6  # the process's thresholds are back


async def test_the_thresholds_come_back_after_the_last_of_two_services() -> None:
    before = gc.get_threshold()
    first = asyncio.create_task(FullCollections(lambda: 0).run())
    second = asyncio.create_task(FullCollections(lambda: 0).run())
    await asyncio.sleep(0)
    assert gc.get_threshold()[2] == collector._NEVER
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert gc.get_threshold()[2] == collector._NEVER  # the second still runs
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert gc.get_threshold() == before
