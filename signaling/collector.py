"""Full garbage collections paced by sockets closing, not by sockets opening.

CPython runs a full collection (its oldest generation: every container object the
process holds) whenever the objects that survived the young collections have grown by a
quarter since the last one. A process filling with sockets grows exactly that way, with
no garbage at all: in a reconnect storm (a restart, and every open page connects again
within seconds) it walked each open socket's ~100 objects once more at every quarter of
growth, 0.4 ms of CPU per connect, half of what a connect cost (docs/benchmarks.md,
"Idle authenticated connections").

A socket's objects can only become garbage once it has closed. So while a signaling
service runs, automatic full collections are off, and `FullCollections` runs one when a
quarter of the open sockets (at least MIN_CLOSED) have closed since the last one: the
garbage it leaves stays within the bound CPython's own rule keeps. For the rest of the
process (HTTP requests and database sessions leave garbage too) it also runs one when
CPython would have considered one (YOUNG_COLLECTIONS young collections since the last),
but no more often than every MAX_INTERVAL seconds: an idle process with thousands of
sockets open is not walked for nothing. Young collections are unchanged.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

# How often the task looks; a look costs nothing but two comparisons.
CHECK_SECONDS = 5.0
MIN_CLOSED = 100
MAX_INTERVAL = 120.0
# CPython's default third threshold: collections of the middle generation between two
# full ones.
YOUNG_COLLECTIONS = 10
# The third threshold: this many young-generation (1) collections before an automatic
# full one, i.e. never in a process's life.
_NEVER = 2**30

# Services running the policy in this process, and the thresholds to restore after the
# last (tests run several apps in one process).
_active = 0
_saved: tuple[int, int, int] | None = None


def full_collection_due(
    closed: int, open_sockets: int, seconds_since: float, young_collections: int
) -> bool:
    """Whether a full collection is worth its cost now: since the last one, `closed`
    sockets have closed and `young_collections` collections of the middle generation
    have run, `seconds_since` seconds ago; `open_sockets` are open."""
    if closed >= max(MIN_CLOSED, open_sockets // 4):
        return True
    return seconds_since >= MAX_INTERVAL and young_collections >= YOUNG_COLLECTIONS


class FullCollections:
    """The policy for one signaling service: `socket_closed` as each socket ends, `run`
    as a task while the service runs."""

    def __init__(self, open_sockets: Callable[[], int]) -> None:
        self._open_sockets = open_sockets
        self.closed = 0
        self._last = time.monotonic()

    def socket_closed(self) -> None:
        self.closed += 1

    def collect_if_due(self) -> bool:
        now = time.monotonic()
        # gc's third count: the middle generation's collections since the last full one.
        young = gc.get_count()[2]
        if not full_collection_due(self.closed, self._open_sockets(), now - self._last, young):
            return False
        gc.collect()
        self.closed, self._last = 0, time.monotonic()
        return True

    async def run(self) -> None:
        _take_over()
        try:
            while True:
                await asyncio.sleep(CHECK_SECONDS)
                self.collect_if_due()
        finally:
            _hand_back()


def _take_over() -> None:
    global _active, _saved
    if _active == 0:
        _saved = gc.get_threshold()
        gc.set_threshold(_saved[0], _saved[1], _NEVER)
    _active += 1


def _hand_back() -> None:
    global _active, _saved
    _active -= 1
    if _active == 0 and _saved is not None:
        gc.set_threshold(*_saved)
        _saved = None
