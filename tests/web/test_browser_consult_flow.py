"""A whole consult in the browser: the GP requests and books a slot from the specialist's
roster (each slot says why it is suggested), the specialist finds it on today's schedule,
both join the call from the consult page and see each other, the specialist signs the
report, and the GP prints it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from typing import Any

import pytest
from sqlmodel import Session, select

from server.consults.models import ConsultRequest
from server.scheduling.models import Appointment, AppointmentStatus
from tests.scheduling.factories import every_day
from tests.web.browser_fixtures import ARTIFACTS, browser_login, csp_violations, shot, wait_until
from tests.web.support import make_call_case

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def frames(page: Any) -> int:
    value: int = page.evaluate("() => window.dariCall.inbound('framesDecoded', 'video')")
    return value


def test_request_accept_call_report_print(new_page: Callable[..., Any], bdb: Session) -> None:
    people = make_call_case(bdb)  # a clinic, a hub hospital, a cardiologist
    # The cardiologist's roster: 20-minute consult slots all day, every day (local time),
    # so that a slot is free whenever the test runs.
    every_day(bdb, people.specialist, time(0, 0), time(23, 40))
    gp = new_page("ko")
    specialist = new_page("en")
    browser_login(gp, people.gp)
    browser_login(specialist, people.specialist)

    # The GP writes and sends a video consult request.
    gp.click('a[href="/consults/new"]')
    gp.select_option("select[name=specialty_id]", str(people.consult.specialty_id))
    gp.fill("input[name=patient_chart_number]", "C-0203")
    gp.fill("input[name=patient_age]", "71")
    gp.select_option("select[name=patient_sex]", "female")
    gp.fill("textarea[name=clinical_question]", "Palpitations and new atrial fibrillation on ECG.")
    gp.select_option("select[name=urgency]", "soon")
    gp.select_option("select[name=mode]", "video")
    shot(gp, "consult-new.ko", guide=True)
    gp.click("button[name=action][value=submit]")
    gp.wait_for_url("**/consults/*")
    consult = bdb.exec(
        select(ConsultRequest).where(ConsultRequest.patient_chart_number == "C-0203")
    ).one()
    assert consult.status == "requested"

    # The consult page offers booking; the slot picker says why each slot is suggested.
    gp.click("#book a")
    gp.wait_for_url(f"**/schedule/book?consult={consult.public_id}*")
    ours = gp.locator(f'#slots tr[data-specialist-id="{people.specialist.id}"]')
    assert ours.count() > 0
    assert ours.first.locator("td.muted").inner_text().strip() != ""  # the reason
    shot(gp, "flow-consult-book.ko")
    ours.first.locator("button[type=submit]").click()
    # Booked: the consult page confirms who, when and how to join.
    gp.wait_for_url(f"**/consults/{consult.public_id}?booked=1*")
    assert gp.locator("#appointment h2").count() == 1
    gp.goto("/schedule/appointments")
    assert gp.locator(f"#appt-{consult.public_id}").count() == 1
    bdb.refresh(consult)
    assert consult.status == "scheduled" and consult.assigned_specialist_id == people.specialist.id
    booked = bdb.exec(
        select(Appointment).where(
            Appointment.consult_request_id == consult.id,
            Appointment.status == AppointmentStatus.ACTIVE,
        )
    ).one()
    assert booked.specialist_id == people.specialist.id

    # The specialist finds it in their consults and on today's schedule, and opens it.
    specialist.goto("/")
    assert specialist.locator(f"#mine a[href='/consults/{consult.public_id}']").count() >= 1
    specialist.click("nav a[href='/schedule/appointments']")
    shot(specialist, "flow-schedule.en")
    specialist.click(f"#appt-{consult.public_id}")
    specialist.wait_for_url(f"**/consults/{consult.public_id}")
    assert specialist.locator("#appointment").count() == 1

    # Both join the call from the consult page and see each other.
    gp.goto(f"/consults/{consult.public_id}")
    shot(gp, "consult-detail.ko", guide=True)
    gp.click("#join-call button")
    specialist.click("#join-call button")
    for page in (gp, specialist):
        page.wait_for_url(f"**/consults/{consult.public_id}/call*")
    wait_until(lambda: frames(gp) > 0 and frames(specialist) > 0, timeout=30)

    # The specialist hangs up, writes the report and signs it.
    specialist.click("#btn-hangup")
    specialist.wait_for_url(f"**/consults/{consult.public_id}")
    specialist.fill("textarea[name=findings]", "Atrial fibrillation, rate 110, no heart failure.")
    specialist.fill("textarea[name=assessment]", "New-onset AF, CHA2DS2-VASc 3.")
    specialist.fill("textarea[name=recommendation]", "Start rate control; anticoagulation.")
    specialist.on("dialog", lambda dialog: dialog.accept())  # "sign? it never changes"
    specialist.click("button[name=action][value=sign]")

    def signed() -> bool:
        bdb.refresh(consult)
        return consult.report_signed_at is not None

    wait_until(signed, timeout=15)

    # The GP reads it and prints it.
    gp.click("#btn-hangup")
    gp.wait_for_url(f"**/consults/{consult.public_id}")
    gp.goto(f"/consults/{consult.public_id}/print")
    assert "New-onset AF" in gp.content()
    shot(gp, "report-print.ko", guide=True)
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = gp.pdf(path=str(ARTIFACTS / "report.ko.pdf"), format="A4")
    assert pdf[:4] == b"%PDF"
    assert csp_violations(gp) == [] and csp_violations(specialist) == []
