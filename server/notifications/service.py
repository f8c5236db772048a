"""Writing to and reading from the outbox."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlmodel import Session, col, select

from server.clock import utcnow
from server.errors import AppError
from server.notifications.models import Notification
from web.render import N_

# Called after every commit that wrote a notification: the app registers its user
# channel's wake-up, which polls the outbox at once on this process and tells the
# other processes to do the same (signaling/users.py, docs/signaling.md "User channel").
_wakers: list[Callable[[], None]] = []
URGENT_PREFIX = "urgent."

# Gap-free delivery on PostgreSQL rests on a bound (SQLite commits ids in order and needs
# none): a transaction that wrote a notification commits within COMMIT_WITHIN_SECONDS of
# writing it, or not at all. The check at commit bounds
# the time the transaction spends working; on PostgreSQL the server itself ends a
# transaction left idle longer than IDLE_WITHIN_SECONDS (a stalled or frozen process),
# so the time between that check and COMMIT is bounded too. The user channel re-reads
# the outbox RESCAN_SECONDS behind its newest row (longer than both, with a margin
# for commit itself and for clock differences between hosts).
COMMIT_WITHIN_SECONDS = 10.0
IDLE_WITHIN_SECONDS = 10.0
RESCAN_SECONDS = 30.0


class NotificationCommitTooLate(AppError):
    """A transaction held a notification too long before committing: it rolls back, so
    a late commit can never slip below the user channel's re-scan window."""

    def __init__(self) -> None:
        super().__init__(
            "notification_commit_late",
            N_("Saving took too long, so nothing was changed. Please try again."),
            503,
        )


def add_waker(waker: Callable[[], None]) -> Callable[[], None]:
    """Register a wake-up; returns the function that removes it (the app's shutdown)."""
    _wakers.append(waker)
    return lambda: _wakers.remove(waker) if waker in _wakers else None


def _check(session: Session) -> None:
    started = session.info.get("dari_bound_from")
    if started is None:
        return
    # The commit's own flush first, so that only the COMMIT itself is left after the check.
    session.flush()
    if time.monotonic() - started > COMMIT_WITHIN_SECONDS:
        raise NotificationCommitTooLate()


def _fire(session: Session) -> None:
    session.info.pop("dari_bound_from", None)
    if session.info.pop("dari_notified", None) is None:
        return
    for waker in list(_wakers):
        waker()


def _forget(session: Session, *_: Any) -> None:
    session.info.pop("dari_bound_from", None)
    session.info.pop("dari_notified", None)


def _out_of_order_possible(session: Session) -> bool:
    """PostgreSQL in a transaction. SQLite holds its write lock from a transaction's
    first write to its commit, so its ids commit in order; in autocommit (the tests'
    observer sessions) each insert is visible at once."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return False
    return not getattr(connection.connection.dbapi_connection, "autocommit", False)


def _guard_transaction(session: Session) -> None:
    """First notification of this transaction: wake after its commit, and bound the
    commit where ids may commit out of order."""
    if session.info.get("dari_notified"):
        return
    session.info["dari_notified"] = True
    if not session.info.get("dari_guarded"):
        # Once per session; they act only on a transaction that wrote a notification.
        session.info["dari_guarded"] = True
        event.listen(session, "before_commit", _check)
        event.listen(session, "after_commit", _fire)
        event.listen(session, "after_rollback", _forget)
    if _out_of_order_possible(session):
        session.info["dari_bound_from"] = time.monotonic()
        # SET LOCAL: for this transaction only. A client that stalls before COMMIT
        # longer than this has its transaction ended by the server.
        timeout = int(IDLE_WITHIN_SECONDS * 1000)
        session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {timeout}"))


def notify(session: Session, user_id: int, kind: str, payload: dict[str, Any]) -> Notification:
    """Queue one notification in the caller's transaction."""
    _guard_transaction(session)
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


def settled_id(session: Session, before: datetime) -> int:
    """The newest id written before `before` (now minus RESCAN_SECONDS, or more): every
    row at or below it has committed or rolled back (the bound above), so a reader need
    never look below it again.

    Walks the primary key down from the newest row and stops at the first old one, so it
    reads only the last window's rows."""
    cutoff = before
    value = session.exec(
        select(Notification.id)
        .where(col(Notification.created_at) < cutoff)
        .order_by(col(Notification.id).desc())
        .limit(1)
    ).first()
    return int(value or 0)


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
