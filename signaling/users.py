"""The user channel: live notifications from the durable outbox.

Delivery is by polling, once per process: every `notification_poll_seconds` one
query (in a thread, short DB session) fetches outbox rows newer than the last
seen id for the users connected here. A user who was offline catches up on
subscribe with the id of the last notification they saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from signaling import protocol as p
from signaling.connection import Connection
from signaling.gate import Gatekeeper, SignalingConfig

log = logging.getLogger("dari.signaling.users")


@dataclass(eq=False)
class Subscription:
    user_id: int
    conn: Connection
    last_id: int


def _frame(row: dict[str, Any]) -> str:
    return p.NotificationFrame(
        id=row["id"],
        kind=row["kind"],
        payload=row["payload"],
        created_at=row["created_at"],
        read=bool(row.get("read", False)),
    ).dump()


class UserChannel:
    def __init__(self, gate: Gatekeeper, config: SignalingConfig) -> None:
        self.gate = gate
        self.config = config
        self.subscriptions: dict[int, set[Subscription]] = {}
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

    async def subscribe(self, user_id: int, conn: Connection, after_id: int) -> Subscription:
        """Send what was missed since after_id, then keep the connection for live ones."""
        if not self.subscriptions:
            # Nobody was listening: start from now, the catch-up covers the past.
            self.high_water = await self.gate.latest_notification_id()
        subscription = Subscription(user_id, conn, after_id)
        self.subscriptions.setdefault(user_id, set()).add(subscription)
        for row in await self.gate.notifications_since(user_id, after_id):
            await self._send(subscription, row)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        group = self.subscriptions.get(subscription.user_id)
        if group is not None:
            group.discard(subscription)
            if not group:
                del self.subscriptions[subscription.user_id]

    async def _send(self, subscription: Subscription, row: dict[str, Any]) -> None:
        # Catch-up and polling may overlap: never send the same id twice.
        if row["id"] <= subscription.last_id:
            return
        subscription.last_id = row["id"]
        try:
            text = _frame(row)
        except (KeyError, ValidationError):
            # An outbox row the gate handed over incomplete: skip it, not the rest.
            log.warning("notification %s not sent: malformed row", row["id"])
            return
        # A socket that has gone does not raise (signaling/connection.py); its
        # endpoint unsubscribes it.
        await subscription.conn.send_text(text)

    async def poll_once(self) -> None:
        if not self.subscriptions:
            return
        rows = await self.gate.notifications_after(self.high_water, list(self.subscriptions))
        for user_id, row in rows:
            self.high_water = max(self.high_water, row["id"])
            for subscription in list(self.subscriptions.get(user_id, ())):
                await self._send(subscription, row)

    def wake(self) -> None:
        """Poll now rather than at the next tick (called on this process's event loop
        after a commit whose notifications must not wait: an urgent ring, its end)."""
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
