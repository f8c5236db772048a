"""Writing to and reading from the outbox."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from server.clock import utcnow
from server.notifications.models import Notification


def notify(session: Session, user_id: int, kind: str, payload: dict[str, Any]) -> Notification:
    """Queue one notification in the caller's transaction."""
    notification = Notification(user_id=user_id, kind=kind, payload=json.dumps(payload))
    session.add(notification)
    session.flush()
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
