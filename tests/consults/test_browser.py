"""The report draft saves itself while the specialist types (headless Chromium)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, select

from server.consults.models import ConsultReport, ConsultStatus
from tests.consults.helpers import make_consult, make_team
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.browser


def test_report_draft_autosaves(live_server: str, db: Session, browser: Browser) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    context = browser.new_context()
    try:
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{live_server}/login")
        page.fill("input[name=email]", team.specialist.email)
        page.fill("input[name=password]", TEST_PASSWORD)
        page.locator("input[name=password]").press("Enter")
        page.wait_for_url(f"{live_server}/")
        page.goto(f"{live_server}/consults/{consult.public_id}")
        page.fill("textarea[name=findings]", "Typed, never submitted")
        # (wait_for_function would need eval, which our CSP rightly forbids)
        page.wait_for_selector("#autosave-status:not(:empty)", timeout=10_000)
        status = page.locator("#autosave-status").text_content() or ""
        assert "저장" in status or "Saved" in status, status
        assert problems == []
    finally:
        context.close()
    deadline = time.monotonic() + 5
    draft = None
    while time.monotonic() < deadline and draft is None:
        draft = db.exec(select(ConsultReport).where(ConsultReport.consult_id == consult.id)).first()
        time.sleep(0.1)
    assert draft is not None and draft.findings == "Typed, never submitted"
    assert draft.signed_at is None
