"""200 GPs try to book the same slot at the same moment, through the running app."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx2
import pytest
from sqlmodel import Session, select

from server.accounts.models import OrgKind, Role, User
from server.consults.models import ConsultRequest
from server.scheduling import rosters, search
from server.scheduling.models import Appointment
from tests.factories import TEST_PASSWORD, make_organisation, make_specialty, make_user
from tests.scheduling.factories import (
    every_day,
    future_day,
    make_consult,
    make_hospital,
    make_specialist,
)

ATTEMPTS = 200


def logged_in_client(base: str, user: User) -> httpx2.Client:
    client = httpx2.Client(base_url=base, timeout=120)
    csrf = client.get("/api/auth/csrf").json()["csrf_token"]
    response = client.post(
        "/api/auth/login",
        json={"email": user.email, "password": TEST_PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


@pytest.mark.slow
def test_two_hundred_simultaneous_bookings_one_wins(live_server: str, db: Session) -> None:
    specialty = make_specialty(db)
    specialist = make_specialist(db, make_hospital(db), specialty)
    every_day(db, specialist)
    clinic = make_organisation(db, kind=OrgKind.CLINIC)
    gps = [make_user(db, Role.GP, organisation=clinic) for _ in range(ATTEMPTS)]
    consults: list[ConsultRequest] = [make_consult(db, gp, specialty) for gp in gps]
    start, end = rosters.local_day_bounds(future_day(), rosters.zone("Asia/Seoul"))
    slot = search.search_slots(
        db, specialty_id=specialty.id or 0, start=start, end=end, home_region_id=None
    )[0]

    with ThreadPoolExecutor(max_workers=8) as pool:  # logging in is deliberately slow (argon2)
        clients = list(pool.map(lambda gp: logged_in_client(live_server, gp), gps))
    barrier = threading.Barrier(ATTEMPTS)

    def attempt(index: int) -> httpx2.Response:
        body = {
            "consult_id": consults[index].public_id,
            "specialist_id": specialist.id,
            "starts_at": slot.starts_at.isoformat(),
        }
        # A fresh connection per attempt: the login's keep-alive connection may have
        # been closed by the server while the others were still logging in.
        logged_in = clients[index]
        with httpx2.Client(
            base_url=live_server,
            cookies=logged_in.cookies,
            headers=logged_in.headers,
            timeout=120,
        ) as fresh:
            barrier.wait(timeout=60)
            return fresh.post("/api/appointments", json=body)

    try:
        with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
            responses = list(pool.map(attempt, range(ATTEMPTS)))
    finally:
        for client in clients:
            client.close()

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == ATTEMPTS - 1, statuses
    losers = [r.json()["error"] for r in responses if r.status_code == 409]
    assert all(e["code"] == "slot_taken" for e in losers)
    # Every loser is offered other slots, never the one just taken.
    assert all(
        e["next_slots"] and e["next_slots"][0]["starts_at"] != slot.starts_at.isoformat()
        for e in losers
    )
    db.expire_all()
    rows = db.exec(select(Appointment).where(Appointment.specialist_id == specialist.id)).all()
    assert len(rows) == 1 and rows[0].starts_at == slot.starts_at
    stored = [db.get(ConsultRequest, c.id) for c in consults]
    scheduled = [c for c in stored if c is not None and c.status == "scheduled"]
    assert len(scheduled) == 1
    assert slot.ends_at - slot.starts_at == timedelta(minutes=20)
