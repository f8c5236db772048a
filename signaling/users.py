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
from typing import Any

from pydantic import ValidationError

from signaling import protocol as p
from signaling.connection import Connection
from signaling.gate import Gatekeeper, SignalingConfig

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

    async def subscribe(self, user_id: int, conn: Connection, after_id: int) -> Subscription:
        """Send what was missed since after_id, then keep the connection for live ones."""
        if not self.subscriptions:
            # Nobody was listening, so the floor stood still: move it up to now's (the
            # catch-up below covers the past for this one).
            settled, _ = await self.gate.notifications_window(self.floor, [], self._cutoff())
            if not self.subscriptions:  # nobody came in meanwhile (they would miss rows)
                self.floor = max(self.floor, settled)
        subscription = Subscription(user_id, conn, after_id)
        self.subscriptions.setdefault(user_id, set()).add(subscription)
        # Set by a poll that ended before now: everything at or below it was visible
        # before this catch-up reads, or was sent here by a poll that included us.
        floor = self.floor
        cursor = after_id
        while True:
            rows = await self.gate.notifications_since(user_id, cursor)
            for row in rows:
                # Sent in id order: with this row the client has all rows up to it
                # that were visible, which includes all rows up to the floor.
                await self._send(subscription, row, min(floor, row["id"]))
            if len(rows) < CATCH_UP_PAGE:
                break
            cursor = rows[-1]["id"]
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
        settled, rows = await self.gate.notifications_window(before, users, self._cutoff())
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
                log.exception("notification poll failed")
