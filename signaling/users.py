"""The user channel: live notifications from the durable outbox, none skipped.

One poller per process reads the outbox for the users connected here: at once when
a commit anywhere wrote a notification (the server wakes it: this process directly,
the others over the broker, signaling/app.py), and every `notification_poll_seconds`
as the fallback. A user who was offline catches up on subscribe.

Ids are taken at insert and become visible at commit, so on PostgreSQL a lower id
can appear after a higher one. Nothing here moves past a row that may still appear:
every poll re-reads the connected users' rows above the *floor*, the newest id written
more than `notification_window_seconds` ago. Every row at or below it has committed
or rolled back, because a transaction that writes a notification must commit within
a bound shorter than the window (server/notifications/service.py). Each subscription
remembers the ids above the floor it was sent, so a re-read sends nothing twice; and
each frame tells the client the floor below which it now has everything, which the
client sends back as `after_id` when it reconnects (docs/signaling.md "User channel").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from signaling import protocol as p
from signaling.connection import Connection, stop_requested
from signaling.gate import Gatekeeper, Identity, SignalingConfig

log = logging.getLogger("dari.signaling.users")

# The broker channel on which a process that committed notifications wakes the others.
WAKE_CHANNEL = "notifications.wake"
# Rows per catch-up read (the gatekeeper's limit): a longer absence reads more pages.
CATCH_UP_PAGE = 500


@dataclass(eq=False)
class Subscription:
    user_id: int
    conn: Connection
    # The client's floor (its after_id): it has every row at or below it.
    last_id: int
    # Ids above the channel's floor already sent on this connection.
    sent: set[int] = field(default_factory=set)
    # Catch-up done: from now on the frames may tell the client a floor.
    ready: bool = False


@runtime_checkable
class CatchUpGate(Protocol):
    """A gate that can read a subscriber's catch-up in the same database transaction
    (and thread hop) as its authentication: one read per connect instead of two."""

    async def authenticate_subscriber(
        self, cookie: str | None, token: str | None, after_id: int
    ) -> tuple[Identity | None, list[dict[str, Any]] | None]:
        """(identity, the user's rows above after_id, at most CATCH_UP_PAGE, oldest
        first); rows None when not read (the channel then reads them itself)."""
        ...


@dataclass(frozen=True)
class Prefetch:
    """Catch-up rows read before `subscribe`, and the channel's `mark` taken before the read."""

    mark: int | None
    rows: list[dict[str, Any]]


def _frame(row: dict[str, Any], floor: int | None) -> str:
    return p.NotificationFrame(
        id=row["id"],
        kind=row["kind"],
        payload=row["payload"],
        created_at=row["created_at"],
        read=bool(row.get("read", False)),
        floor=floor,
    ).dump()


class UserChannel:
    def __init__(
        self,
        gate: Gatekeeper,
        config: SignalingConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gate = gate
        self.config = config
        self.clock = clock
        self.subscriptions: dict[int, set[Subscription]] = {}
        # Every row at or below `floor` has been sent to every subscription that was
        # here when it became visible (or was read by that subscription's catch-up).
        self.floor = 0
        self.high_water = 0
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        # Reads that may move the floor: how many have started, how many are running.
        self._floor_reads = 0
        self._floor_reading = 0

    async def start(self) -> None:
        self._poller = asyncio.create_task(self._poll_loop(), name="notification-poller")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self.subscriptions.clear()

    def _cutoff(self) -> float:
        return self.clock() - self.config.notification_window_seconds

    def mark(self) -> int | None:
        """Taken just before a catch-up read that runs ahead of `subscribe` (`Prefetch`).

        None while a floor-moving read is running (such a prefetch is never used)."""
        return None if self._floor_reading else self._floor_reads

    async def _window(
        self, floor: int, user_ids: list[int]
    ) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        self._floor_reads += 1
        self._floor_reading += 1
        try:
            return await self.gate.notifications_window(floor, user_ids, self._cutoff())
        finally:
            self._floor_reading -= 1

    async def subscribe(
        self,
        user_id: int,
        conn: Connection,
        after_id: int,
        prefetch: Prefetch | None = None,
    ) -> Subscription:
        """Send what was missed since after_id, then keep the connection for live ones."""
        if not self.subscriptions:
            # Nobody was listening, so the floor stood still: move it up to now's (the
            # catch-up below covers the past for this one).
            settled, _ = await self._window(self.floor, [])
            if not self.subscriptions:  # nobody came in meanwhile (they would miss rows)
                self.floor = max(self.floor, settled)
        subscription = Subscription(user_id, conn, after_id)
        self.subscriptions.setdefault(user_id, set()).add(subscription)
        # Set by a poll that ended before now: everything at or below it was visible
        # before this catch-up reads, or was sent here by a poll that included us.
        floor = self.floor
        # A prefetched catch-up counts only if no floor-moving read ran or started
        # between its mark and now: then `floor` was settled before that read began,
        # and every read from now on includes this user (no await since the add above).
        rows: list[dict[str, Any]] | None = None
        if prefetch is not None and prefetch.mark is not None and prefetch.mark == self.mark():
            rows = prefetch.rows
        cursor = after_id
        while True:
            if rows is None:
                rows = await self.gate.notifications_since(user_id, cursor)
            for row in rows:
                # Sent in id order: with this row the client has all rows up to it
                # that were visible, which includes all rows up to the floor.
                await self._send(subscription, row, min(floor, row["id"]))
            if len(rows) < CATCH_UP_PAGE:
                break
            cursor = rows[-1]["id"]
            rows = None
        subscription.ready = True
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        group = self.subscriptions.get(subscription.user_id)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self.subscriptions[subscription.user_id]

    async def _send(
        self, subscription: Subscription, row: dict[str, Any], floor: int | None
    ) -> None:
        # Catch-up and polls overlap, and each poll re-reads the window: never send
        # the same id twice on one connection.
        row_id = row["id"]
        if row_id <= subscription.last_id or row_id in subscription.sent:
            return
        subscription.sent.add(row_id)
        try:
            text = _frame(row, floor if floor is not None and floor > 0 else None)
        except (KeyError, ValidationError):
            # An outbox row the gate handed over incomplete: skip it, not the rest.
            log.warning("notification %s not sent: malformed row", row_id)
            return
        # A socket that has gone does not raise (signaling/connection.py); its
        # endpoint unsubscribes it.
        await subscription.conn.send_text(text)

    async def poll_once(self) -> None:
        if not self.subscriptions:
            return
        # Taken together: the users this read covers and the time its floor is settled by.
        users = list(self.subscriptions)
        before = self.floor
        settled, rows = await self._window(before, users)
        for user_id, row in rows:
            self.high_water = max(self.high_water, row["id"])
            for subscription in list(self.subscriptions.get(user_id, ())):
                # The floor set by the previous poll: all of it has been sent before.
                await self._send(subscription, row, before if subscription.ready else None)
        if settled > self.floor:
            self.floor = settled
            for group in self.subscriptions.values():
                for subscription in group:
                    if subscription.ready:  # a catch-up may still read below the floor
                        subscription.sent = {i for i in subscription.sent if i > settled}

    def wake(self) -> None:
        """Poll now rather than at the next tick (called on this process's event loop
        after a commit that wrote notifications, here or in another process)."""
        self._wake.set()

    async def _poll_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.notification_poll_seconds)
            self._wake.clear()
            try:
                await self.poll_once()
            except Exception:
                # Task guard: the gate's query may fail in any way its database
                # can; if this loop ended, no connected user would hear anything.
                if stop_requested():
                    raise asyncio.CancelledError from None
                log.exception("notification poll failed")
