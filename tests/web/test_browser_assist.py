"""The triage assist in Chromium: the suggestion appears under the question as the GP types
(Korean and English), its buttons are reachable from the keyboard, and the choice made is
recorded with the request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from server.accounts.models import Role
from server.assist.models import AssistSuggestion
from server.consults.models import ConsultRequest
from tests.assist.helpers import consent, seed_specialties
from tests.factories import make_organisation, make_user
from tests.web.browser_fixtures import browser_login, csp_violations, shot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHEST_KO = "1시간 전부터 가슴이 조이는 흉통과 식은땀이 있습니다. 심전도 첨부합니다."
RASH_EN = "Itchy red rash on both forearms for two weeks, worse at night."


def test_suggestion_as_the_gp_types_korean_keyboard_and_choice(
    new_page: Callable[..., Any], bdb: Session
) -> None:
    specialties = seed_specialties(bdb)
    clinic = make_organisation(bdb)
    consent(bdb, clinic)
    gp = make_user(bdb, Role.GP, organisation=clinic)
    page = new_page("ko")
    browser_login(page, gp)
    page.goto("/consults/new")
    assert page.locator("#assist").is_hidden()
    page.select_option("select[name=specialty_id]", str(specialties["psychiatry"].id))
    page.fill("input[name=patient_chart_number]", "K-18")
    page.fill("input[name=patient_age]", "58")
    question = page.locator("textarea[name=clinical_question]")
    question.click()
    page.keyboard.type(CHEST_KO, delay=5)
    # The first suggestion trains the model on this fresh server: give it time.
    page.locator("#assist").wait_for(state="visible", timeout=90_000)
    first = page.locator("#assist-specialties li").first
    assert "심장내과" in first.inner_text()
    assert "가능성" in first.inner_text() and "%%" not in first.inner_text()
    assert "KTAS" in page.locator("#assist-urgency").inner_text()
    assert page.locator("#assist-cold").is_visible()  # the cold start is said
    shot(page, "assist-suggest.ko")

    # Keyboard: from the question, Tab reaches "use" for the first specialty; Enter takes it.
    question.focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.className")
    assert "assist-use" in focused
    page.keyboard.press("Enter")
    assert page.locator("select[name=specialty_id]").input_value() == str(
        specialties["cardiology"].id
    )
    page.locator(".assist-mark-urgent").focus()
    page.keyboard.press("Enter")
    assert page.locator("select[name=urgency]").input_value() == "urgent"
    suggestion_id = page.locator("#assist-suggestion").input_value()
    assert suggestion_id

    page.click("button[name=action][value=submit]")
    page.wait_for_url("**/consults/*")
    consult = bdb.exec(
        select(ConsultRequest).where(ConsultRequest.patient_chart_number == "K-18")
    ).one()
    row = wait_until(
        lambda: bdb.exec(
            select(AssistSuggestion).where(AssistSuggestion.public_id == suggestion_id)
        ).one()
    )
    bdb.refresh(row)
    assert row.consult_id == consult.id
    assert row.took_specialty is True and row.took_urgency is True
    assert csp_violations(page) == []


def test_suggestion_in_english_and_off_without_consent(
    new_page: Callable[..., Any], bdb: Session
) -> None:
    seed_specialties(bdb)
    clinic = make_organisation(bdb)
    consent(bdb, clinic)
    gp = make_user(bdb, Role.GP, organisation=clinic)
    page = new_page("en")
    browser_login(page, gp)
    page.goto("/consults/new")
    page.fill("textarea[name=clinical_question]", RASH_EN)
    page.locator("#assist").wait_for(state="visible", timeout=90_000)
    first = page.locator("#assist-specialties li").first
    assert "Dermatology" in first.inner_text() and "likely" in first.inner_text()
    assert page.locator("#assist-urgency").inner_text().strip() == ""
    shot(page, "assist-suggest.en")

    # Another clinic, not switched on: nothing appears, and nothing is stored.
    other_gp = make_user(bdb, Role.GP)
    other = new_page("en")
    browser_login(other, other_gp)
    with other.expect_response("**/api/assist/status") as status:
        other.goto("/consults/new")
    assert status.value.json() == {"enabled": False}
    other.fill("textarea[name=clinical_question]", RASH_EN)
    other.wait_for_timeout(1500)  # past the debounce: no request, nothing shown
    assert other.locator("#assist").is_hidden()
    assert (
        bdb.exec(select(AssistSuggestion).where(AssistSuggestion.user_id == other_gp.id)).all()
        == []
    )
