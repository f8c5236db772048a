"""The consult page leads a GP to the slot picker, and shows the booked appointment."""

from __future__ import annotations

from datetime import time

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Role, Specialty
from server.consults.models import ConsultMode, ConsultStatus
from tests.factories import login, make_user
from tests.scheduling.factories import every_day
from tests.web.support import make_call_case

HTML = {"Accept": "text/html"}


def test_gp_books_from_the_consult_page(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    case = make_call_case(db)
    case.consult.status = ConsultStatus.REQUESTED
    case.consult.assigned_specialist_id = None
    db.add(case.consult)
    db.commit()
    every_day(db, case.specialist, time(0, 0), time(23, 40))
    page_url = f"/consults/{case.consult.public_id}"
    login(client, case.gp)
    page = client.get(page_url, headers=HTML)
    link = f'href="/schedule/book?consult={case.consult.public_id}"'
    assert page.status_code == 200 and link in page.text and 'id="appointment"' not in page.text

    picker = client.get(f"/schedule/book?consult={case.consult.public_id}", headers=HTML)
    assert picker.status_code == 200
    assert f'data-specialist-id="{case.specialist.id}"' in picker.text
    slots = client.get("/api/slots", params={"specialty_id": case.consult.specialty_id}).json()
    ours = [s for s in slots if s["specialist_id"] == case.specialist.id]
    assert ours and all(s["reason"] for s in ours)

    booked = client.post(
        "/schedule/book",
        data={
            "consult": case.consult.public_id,
            "specialist_id": str(case.specialist.id),
            "starts_at": ours[0]["starts_at"],
        },
        follow_redirects=False,
    )
    assert booked.status_code == 303
    page = client.get(page_url, headers=HTML)
    assert 'id="appointment"' in page.text and link not in page.text
    assert case.specialist.name in page.text

    # The specialist sees the appointment, but is never offered the slot picker.
    login(other_client, case.specialist)
    theirs = other_client.get(page_url, headers=HTML)
    assert 'id="appointment"' in theirs.text and link not in theirs.text
    schedule = other_client.get("/schedule/appointments", headers=HTML)
    assert f'id="appt-{case.consult.public_id}"' in schedule.text


def test_no_slot_picker_for_a_written_consult(client: TestClient, db: Session) -> None:
    case = make_call_case(db)
    case.consult.status = ConsultStatus.REQUESTED
    case.consult.assigned_specialist_id = None
    case.consult.mode = ConsultMode.ASYNC
    db.add(case.consult)
    db.commit()
    login(client, case.gp)
    page = client.get(f"/consults/{case.consult.public_id}", headers=HTML)
    assert page.status_code == 200 and "/schedule/book?consult=" not in page.text


def test_an_accepted_consult_is_offered_only_its_specialists_slots(
    client: TestClient, db: Session
) -> None:
    case = make_call_case(db)
    rival = make_user(db, Role.SPECIALIST, specialty=db.get(Specialty, case.consult.specialty_id))
    for person in (case.specialist, rival):
        every_day(db, person, time(0, 0), time(23, 40))
    case.consult.status = ConsultStatus.ACCEPTED  # assigned to case.specialist
    db.add(case.consult)
    db.commit()
    login(client, case.gp)
    page = client.get(f"/consults/{case.consult.public_id}", headers=HTML)
    assert f"/schedule/book?consult={case.consult.public_id}" in page.text
    picker = client.get(f"/schedule/book?consult={case.consult.public_id}", headers=HTML)
    assert f'data-specialist-id="{case.specialist.id}"' in picker.text
    assert f'data-specialist-id="{rival.id}"' not in picker.text
