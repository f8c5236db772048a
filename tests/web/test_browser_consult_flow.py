"""A whole consult in the browser: the GP requests, the specialist accepts from the inbox,
both join the call from the consult page and see each other, the specialist signs the
report, and the GP prints it (booking joins this flow when scheduling lands)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session, select

from server.consults.models import ConsultRequest
from tests.web.browser_fixtures import ARTIFACTS, browser_login, csp_violations, shot, wait_until
from tests.web.support import make_call_case

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def frames(page: Any) -> int:
    value: int = page.evaluate("() => window.dariCall.inboundVideoFrames()")
    return value


def test_request_accept_call_report_print(new_page: Callable[..., Any], bdb: Session) -> None:
    people = make_call_case(bdb)  # a clinic, a hub hospital, a cardiologist
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

    # The specialist accepts it from the inbox.
    specialist.goto("/")
    specialist.click(f"#pool-{consult.public_id} button[value=accepted]")
    specialist.wait_for_url(f"**/consults/{consult.public_id}")
    bdb.refresh(consult)
    assert consult.status == "accepted" and consult.assigned_specialist_id == people.specialist.id

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
    specialist.click("button[name=action][value=sign]")
    wait_until(lambda: bdb.refresh(consult) or consult.report_signed_at is not None, timeout=15)

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
