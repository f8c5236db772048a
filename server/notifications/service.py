"""Writing to and reading from the outbox."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlmodel import Session, col, select

from server.clock import utcnow
from server.notifications.models import Notification

# Called after a commit that wrote an urgent notification: the app registers its user
# channel's wake-up, so an urgent ring (or its end) is delivered at once rather than at
# the next outbox poll. Other processes still see it at their next poll.
_wakers: list[Callable[[], None]] = []
URGENT_PREFIX = "urgent."


def add_waker(waker: Callable[[], None]) -> Callable[[], None]:
    """Register a wake-up; returns the function that removes it (the app's shutdown)."""
    _wakers.append(waker)
    return lambda: _wakers.remove(waker) if waker in _wakers else None


def _wake_after_commit(session: Session) -> None:
    if session.info.get("dari_wake"):
        return
    session.info["dari_wake"] = True

    def fire(committed: Session) -> None:
        committed.info.pop("dari_wake", None)
        for waker in list(_wakers):
            waker()

    event.listen(session, "after_commit", fire, once=True)


def notify(session: Session, user_id: int, kind: str, payload: dict[str, Any]) -> Notification:
    """Queue one notification in the caller's transaction."""
    notification = Notification(user_id=user_id, kind=kind, payload=json.dumps(payload))
    session.add(notification)
    session.flush()
    if kind.startswith(URGENT_PREFIX):
        _wake_after_commit(session)
    return notification


def notify_many(
    session: Session, user_ids: Iterable[int], kind: str, payload: dict[str, Any]
) -> list[Notification]:
    return [notify(session, user_id, kind, payload) for user_id in set(user_ids)]


def since(
    session: Session, user_id: int, after_id: int = 0, limit: int = 100
) -> list[Notification]:
    """The user's notifications newer than `after_id`, oldest first (for catch-up)."""
    return list(
        session.exec(
            select(Notification)
            .where(Notification.user_id == user_id, col(Notification.id) > after_id)
            .order_by(col(Notification.id))
            .limit(limit)
        ).all()
    )


def mark_read(session: Session, user_id: int, up_to_id: int) -> int:
    """Mark the user's notifications up to an id as read; returns how many."""
    rows = session.exec(
        select(Notification).where(
            Notification.user_id == user_id,
            col(Notification.id) <= up_to_id,
            col(Notification.read_at).is_(None),
        )
    ).all()
    now = utcnow()
    for row in rows:
        row.read_at = now
        session.add(row)
    return len(rows)


def as_dict(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "kind": notification.kind,
        "payload": json.loads(notification.payload),
        "created_at": notification.created_at.isoformat(),
        "read": notification.read_at is not None,
    }
