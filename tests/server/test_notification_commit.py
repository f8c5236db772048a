"""The outbox's side of gap-free, prompt delivery: every commit that wrote a notification
wakes the user channel, and such a transaction commits within its bound or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from server.db import engine_for
from server.notifications import service as notifications
from server.notifications.models import Notification
from tests.signaling.factories import make_call


def test_every_kind_wakes_after_commit_and_a_rollback_does_not(db: Session) -> None:
    woken: list[str] = []
    remove = notifications.add_waker(lambda: woken.append("wake"))
    try:
        call = make_call(db)
        notifications.notify(db, call.gp.id or 0, "appointment.booked", {})
        notifications.notify(db, call.gp.id or 0, "consult.message", {})
        assert woken == []  # not before the commit
        db.commit()
        assert woken == ["wake"]  # once per commit
        notifications.notify(db, call.gp.id or 0, "consult.message", {})
        db.rollback()
        db.commit()
        assert woken == ["wake"]
    finally:
        remove()


def test_a_transaction_that_holds_a_notification_too_long_rolls_back_on_postgresql(
    database_url: str, monkeypatch: pytest.MonkeyPatch, db: Session
) -> None:
    call = make_call(db)
    engine = engine_for(database_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        monkeypatch.setattr(notifications, "COMMIT_WITHIN_SECONDS", -1.0)  # always late
        with Session(engine) as session:
            row_id = notifications.notify(session, call.gp.id or 0, "urgent.ring", {}).id
            if postgres:
                # A stalled client's transaction is ended by the server itself.
                timeout = session.execute(text("SHOW idle_in_transaction_session_timeout"))
                assert timeout.scalar_one() == f"{int(notifications.IDLE_WITHIN_SECONDS)}s"
                with pytest.raises(notifications.NotificationCommitTooLate):
                    session.commit()
                session.rollback()
            else:
                session.commit()  # SQLite commits ids in order: no bound to keep
        stored = db.exec(select(Notification).where(Notification.id == row_id)).first()
        assert (stored is None) == postgres
        monkeypatch.setattr(notifications, "COMMIT_WITHIN_SECONDS", 10.0)
        with Session(engine) as session:  # a transaction in time commits
            kept = notifications.notify(session, call.gp.id or 0, "urgent.ring", {}).id
            session.commit()
        assert db.exec(select(Notification).where(Notification.id == kept)).first()
    finally:
        engine.dispose()


def test_observer_sessions_in_autocommit_are_not_bounded(
    monkeypatch: pytest.MonkeyPatch, db: Session
) -> None:
    """Each insert is visible at once: nothing can commit out of order."""
    monkeypatch.setattr(notifications, "COMMIT_WITHIN_SECONDS", -1.0)
    call = make_call(db)
    notifications.notify(db, call.gp.id or 0, "consult.message", {})
    db.commit()


def test_the_window_outlasts_the_bound() -> None:
    # Commit work, then at most the idle time before COMMIT, then a margin for the
    # commit itself and for clocks: the re-read window must cover all of it.
    assert (
        notifications.RESCAN_SECONDS
        >= notifications.COMMIT_WITHIN_SECONDS + notifications.IDLE_WITHIN_SECONDS + 5
    )
