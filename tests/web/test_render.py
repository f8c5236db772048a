"""Dates and times in the user's zone and language."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlmodel import Session

from server.accounts.models import OrgKind, Role, User
from tests.conftest import observer_engine
from tests.factories import make_organisation, make_user
from web.render import local_time, user_timezone

NOON_UTC = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)  # 12:00 in Seoul


def test_local_time_uses_zone_and_language() -> None:
    korean = local_time(NOON_UTC, "ko", "Asia/Seoul")
    english = local_time(NOON_UTC, "en", "Asia/Seoul")
    assert "12:00" in korean and "오후" in korean
    assert "12:00" in english and "PM" in english
    assert "3:00" in local_time(NOON_UTC, "en", "UTC")
    assert local_time(None, "ko") == ""


def _request(user: User | None) -> Any:
    settings = SimpleNamespace(default_timezone="Asia/Seoul")
    auth = (user, None) if user is not None else None
    return SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(settings=settings)),
        state=SimpleNamespace(auth=auth),
    )


def test_user_sees_their_organisations_zone(database_url: str, db: Session) -> None:
    clinic = make_organisation(db, kind=OrgKind.CLINIC, timezone="America/Los_Angeles")
    user = make_user(db, Role.GP, organisation=clinic)
    with Session(observer_engine(database_url)) as session:
        loaded = session.get(User, user.id)
        assert user_timezone(_request(loaded)) == "America/Los_Angeles"
    assert user_timezone(_request(None)) == "Asia/Seoul"
