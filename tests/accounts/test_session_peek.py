"""The connect's session read (peek_session, Core, read-only) follows resolve_session's
rule exactly: an ended, pending, idle-expired or absolutely-expired session, or one of a
deactivated user, opens nothing; and only a stale last_seen_at asks for a write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session, select

from server.accounts import service as accounts
from server.accounts.models import LoginSession, Role
from server.accounts.security import token_hash
from server.clock import utcnow
from server.settings import Settings
from tests.factories import make_user
from tests.signaling.factories import session_cookie


def _record(db: Session, cookie: str) -> LoginSession:
    return db.exec(select(LoginSession).where(LoginSession.token_hash == token_hash(cookie))).one()


def test_peek_refuses_exactly_what_resolve_refuses(db: Session, settings: Settings) -> None:
    user = make_user(db, Role.GP)
    now = utcnow()
    changes: dict[str, Callable[[LoginSession], None]] = {
        "live": lambda r: None,
        "ended": lambda r: setattr(r, "ended_at", now),
        "pending": lambda r: setattr(r, "pending", "otp"),
        "idle": lambda r: setattr(
            r, "last_seen_at", now - timedelta(minutes=settings.session_idle_minutes + 1)
        ),
        "absolute": lambda r: setattr(
            r, "created_at", now - timedelta(hours=settings.session_absolute_hours + 1)
        ),
    }
    answers = {}
    for name, change in changes.items():
        cookie = session_cookie(db, user)
        record = _record(db, cookie)
        change(record)
        db.add(record)
        db.commit()
        peeked = accounts.peek_session(db.connection(), settings, cookie)
        resolved = accounts.resolve_session(db, settings, cookie, touch=False)
        db.rollback()
        assert (peeked is None) == (resolved is None), name
        answers[name] = peeked
    assert answers["live"] is not None and answers["live"].user_id == user.id
    assert [name for name, found in answers.items() if found is None] == [
        "ended",
        "pending",
        "idle",
        "absolute",
    ]
    assert accounts.peek_session(db.connection(), settings, "no-such-token") is None
    assert accounts.peek_session(db.connection(), settings, None) is None

    cookie = session_cookie(db, user)
    user.active = False
    db.add(user)
    db.commit()
    assert accounts.peek_session(db.connection(), settings, cookie) is None


def test_only_a_stale_session_asks_for_the_touch(db: Session, settings: Settings) -> None:
    user = make_user(db, Role.GP)
    cookie = session_cookie(db, user)
    fresh = accounts.peek_session(db.connection(), settings, cookie)
    assert fresh is not None and not accounts.needs_touch(fresh)
    record = _record(db, cookie)
    record.last_seen_at = utcnow() - timedelta(minutes=5)
    db.add(record)
    db.commit()
    stale = accounts.peek_session(db.connection(), settings, cookie)
    assert stale is not None and accounts.needs_touch(stale)
    accounts.touch_session(db, stale.id)
    db.commit()
    db.refresh(record)
    assert utcnow() - record.last_seen_at < timedelta(seconds=10)
