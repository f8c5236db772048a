"""Booking and administration in Chromium, in both languages; the pictures feed the guide.

The GP opens the slot picker from a video request (each slot says why it is suggested)
and books; the specialist sees it on today's schedule and in the roster; an
administrator adds and deactivates a user, and opens a specialist's roster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from typing import Any

import pytest
from sqlmodel import Session, select

from server.accounts.models import Organisation, Role, User
from server.consults.models import ConsultStatus
from tests.factories import TEST_PASSWORD, make_user, unique
from tests.scheduling.factories import every_day
from tests.web.browser_fixtures import browser_login, csp_violations, shot
from tests.web.support import make_call_case

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_gp_books_and_specialist_sees_the_schedule(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    case.consult.status = ConsultStatus.REQUESTED
    case.consult.assigned_specialist_id = None
    bdb.add(case.consult)
    bdb.commit()
    every_day(bdb, case.specialist, time(0, 0), time(23, 40))
    public_id = case.consult.public_id

    gp = new_page(lang)
    browser_login(gp, case.gp)
    gp.goto(f"/consults/{public_id}")
    gp.click("#book a")
    gp.wait_for_url(f"**/schedule/book?consult={public_id}*")
    rows = gp.locator(f'#slots tr[data-specialist-id="{case.specialist.id}"]')
    assert rows.count() > 0
    reason = rows.first.locator("td.muted").inner_text().strip()
    assert reason and ":" not in reason  # a translated reason, not a code
    shot(gp, f"consult-book.{lang}", guide=True)
    rows.first.locator("button[type=submit]").click()
    gp.wait_for_url(f"**/consults/{public_id}?booked=1*")  # the booking is confirmed there
    gp.goto("/schedule/appointments")
    assert gp.locator(f"#appt-{public_id}").count() == 1
    gp.goto(f"/consults/{public_id}")
    assert gp.locator("#appointment").count() == 1 and gp.locator("#book").count() == 0

    specialist = new_page(lang)
    browser_login(specialist, case.specialist)
    specialist.click("nav a[href='/schedule/appointments']")
    assert specialist.locator(f"#appt-{public_id}").count() == 1
    shot(specialist, f"schedule.{lang}", guide=True)
    specialist.click("nav a[href='/schedule/roster']")
    assert specialist.locator("#rules tbody tr").count() >= 7
    shot(specialist, f"roster.{lang}", guide=True)
    assert csp_violations(gp) == [] and csp_violations(specialist) == []


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_admin_manages_users_specialties_and_rosters(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    hospital_id = case.specialist.organisation_id
    admin = make_user(bdb, Role.ADMIN, organisation=bdb.get(Organisation, hospital_id))
    admin.name = "정하은"
    bdb.add(admin)
    bdb.commit()

    page = new_page(lang)
    browser_login(page, admin)
    page.click("nav a[href='/admin/users']")
    email = f"{unique('nurse')}@test.example"
    page.fill("#new-name", "최도윤")
    page.fill("#new-email", email)
    page.select_option("#new-role", "specialist")
    page.select_option("#new-specialty", str(case.consult.specialty_id))
    page.fill("#new-password", TEST_PASSWORD)
    page.click("#new-user button[type=submit]")
    page.wait_for_url("**/admin/users")
    added = bdb.exec(select(User).where(User.email == email)).one()
    assert added.organisation_id == hospital_id
    page.click(f"#user-{added.id} button[value=false]")
    page.wait_for_url("**/admin/users")
    bdb.refresh(added)
    assert not added.active
    assert page.locator(f"#user-{added.id} button[value=true]").count() == 1
    shot(page, f"admin-users.{lang}", guide=True)

    page.click("nav a[href='/admin/specialties']")
    page.fill("#sp-code", "!!")
    page.fill("#sp-ko", "감염내과")
    page.fill("#sp-en", "Infectious diseases")
    page.click("#new-specialty button[type=submit]")
    assert page.locator("#form-error").count() == 1  # refused, the form is kept
    assert page.input_value("#sp-ko") == "감염내과"
    shot(page, f"admin-specialties.{lang}", guide=True)

    page.click("nav a[href='/admin/organisations']")
    assert page.locator(f"#org-{hospital_id}").count() == 1

    page.click("nav a[href='/admin/rosters']")
    shot(page, f"admin-rosters.{lang}", guide=True)
    page.click(f"a[href='/schedule/roster?specialist_id={case.specialist.id}']")
    page.wait_for_url(f"**/schedule/roster?specialist_id={case.specialist.id}")
    assert case.specialist.name in page.inner_text("h1")
    assert csp_violations(page) == []
