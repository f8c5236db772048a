"""The specialist's inbox in Chromium: an urgent consult rings live, other news offers a refresh."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from server.accounts.models import Role
from server.clock import utcnow
from server.consults.models import ConsultRequest, ConsultStatus, Sex, Urgency
from server.notifications import service as notifications
from server.scheduling import urgent
from tests.factories import make_user
from tests.web.browser_fixtures import browser_login, csp_violations, shot, wait_until
from tests.web.support import make_call_case

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_inbox_rings_for_an_urgent_consult(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    waiting = ConsultRequest(
        organisation_id=case.consult.organisation_id,
        requester_id=case.gp.id or 0,
        specialty_id=case.consult.specialty_id,
        status=ConsultStatus.REQUESTED,
        urgency=Urgency.URGENT,
        requested_at=utcnow(),
        patient_chart_number="C-0152",
        patient_age=58,
        patient_sex=Sex.MALE,
        clinical_question="Crushing chest pain for 40 minutes, ST elevation in II, III, aVF.",
    )
    bdb.add(waiting)
    bdb.commit()
    page = new_page(lang)
    browser_login(page, case.specialist)
    assert page.locator(f"#pool-{waiting.public_id} button[value=accepted]").count() == 1
    page.wait_for_function("() => window.dariInbox !== undefined")
    assert page.evaluate("() => window.dariInbox.rings({kind: 'urgent.ring', payload: {}})")
    assert not page.evaluate(
        "() => window.dariInbox.rings({kind: 'consult.requested', payload: {urgency: 'soon'}})"
    )
    # A message first: news, no ring.
    notifications.notify(bdb, case.specialist.id or 0, "consult.message", {"message": 1})
    bdb.commit()
    wait_until(lambda: page.locator("#live").inner_text().strip() != "", timeout=15)
    assert page.get_attribute("#live", "class") == "live"
    # Then the urgent ring (nobody is on call: the whole specialty is rung).
    urgent.start_urgent(bdb, case.gp, waiting)
    bdb.commit()
    wait_until(lambda: "is-ringing" in (page.get_attribute("#live", "class") or ""), timeout=15)
    assert page.locator(f"[data-ring='{waiting.public_id}']").count() == 1
    assert page.locator("#live a").get_attribute("href") == "/"
    shot(page, f"inbox.{lang}", guide=True)
    assert csp_violations(page) == []


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_gp_home_screenshot(lang: str, new_page: Callable[..., Any], bdb: Session) -> None:
    case = make_call_case(bdb)
    case.consult.status = ConsultStatus.IN_PROGRESS
    bdb.add(case.consult)
    bdb.commit()
    page = new_page(lang)
    browser_login(page, case.gp)
    assert page.locator(f'#tasks a[href="/consults/{case.consult.public_id}/call"]').count() == 1
    shot(page, f"home-gp.{lang}", guide=True)
    admin = new_page(lang)
    browser_login(admin, make_user(bdb, Role.ADMIN))
    shot(admin, f"home-admin.{lang}", guide=True)
