"""Dates and times in the user's zone and language."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlmodel import Session

from server.accounts.models import OrgKind, Role, User
from server.accounts.pages import organisation_timezone, page_viewer
from tests.conftest import observer_engine
from tests.factories import make_organisation, make_user
from web.render import Viewer, local_time, page_timezone

NOON_UTC = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)  # 12:00 in Seoul


def test_local_time_uses_zone_and_language() -> None:
    korean = local_time(NOON_UTC, "ko", "Asia/Seoul")
    english = local_time(NOON_UTC, "en", "Asia/Seoul")
    assert "12:00" in korean and "오후" in korean
    assert "12:00" in english and "PM" in english
    assert "3:00" in local_time(NOON_UTC, "en", "UTC")
    assert local_time(None, "ko") == ""


def test_page_zone_falls_back_to_the_default() -> None:
    assert page_timezone(Viewer(timezone="America/Los_Angeles"), "UTC") == "America/Los_Angeles"
    assert page_timezone(Viewer(), "Asia/Seoul") == "Asia/Seoul"
    assert page_timezone(Viewer(timezone="Mars/Olympus_Mons"), "Asia/Seoul") == "Asia/Seoul"


def _request(user: User | None) -> Any:
    auth = (user, None) if user is not None else None
    return SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(secret_key="k" * 32)),
        state=SimpleNamespace(auth=auth),
        cookies={},
    )


def test_user_sees_their_organisations_zone(database_url: str, db: Session) -> None:
    clinic = make_organisation(db, kind=OrgKind.CLINIC, timezone="America/Los_Angeles")
    user = make_user(db, Role.GP, organisation=clinic)
    with Session(observer_engine(database_url)) as session:
        loaded = session.get(User, user.id)
        assert loaded is not None
        assert organisation_timezone(loaded) == "America/Los_Angeles"
        viewer = page_viewer(_request(loaded))
        assert viewer.user is loaded and viewer.timezone == "America/Los_Angeles"
        assert viewer.locale == loaded.locale and viewer.csrf_token
    anonymous = page_viewer(_request(None))
    assert anonymous.user is None and anonymous.timezone is None
