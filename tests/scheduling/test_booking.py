"""Booking, the database constraint, reschedule and cancel with notifications, authorisation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.accounts.models import OrgKind, Role, User
from server.consults.models import ConsultRequest
from server.db import engine_for
from server.errors import Conflict
from server.notifications.models import Notification
from server.scheduling import booking, rosters, search
from server.scheduling.errors import SlotTaken
from server.scheduling.models import Appointment, AppointmentStatus
from tests.factories import login, make_organisation, make_specialty, make_user
from tests.scheduling.factories import (
    every_day,
    future_day,
    make_consult,
    make_hospital,
    make_specialist,
)


def setup_pair(db: Session) -> tuple[User, User, Any, list[Any]]:
    """A GP and a specialist with 09:00-12:00 Seoul every day; the free slots of one day."""
    specialty = make_specialty(db)
    specialist = make_specialist(db, make_hospital(db), specialty)
    every_day(db, specialist)
    gp = make_user(db, Role.GP)
    start, end = rosters.local_day_bounds(future_day(), rosters.zone("Asia/Seoul"))
    slots = search.search_slots(
        db, specialty_id=specialty.id or 0, start=start, end=end, home_region_id=None
    )
    return gp, specialist, specialty, slots


def appointments_of(db: Session, specialist: User) -> list[Appointment]:
    db.expire_all()
    return list(
        db.exec(
            select(Appointment)
            .where(Appointment.specialist_id == specialist.id)
            .order_by(col(Appointment.id))
        ).all()
    )


def notifications_of(db: Session, user: User) -> list[str]:
    return [
        n.kind for n in db.exec(select(Notification).where(Notification.user_id == user.id)).all()
    ]


def book(client: TestClient, consult: ConsultRequest, specialist: User, starts_at: str) -> Any:
    return client.post(
        "/api/appointments",
        json={
            "consult_id": consult.public_id,
            "specialist_id": specialist.id,
            "starts_at": starts_at,
        },
    )


def test_booking_schedules_the_consult_and_takes_the_slot(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    consult = make_consult(db, gp, specialty)
    login(client, gp)
    response = book(client, consult, specialist, slots[0].starts_at.isoformat())
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "active"
    db.refresh(consult)
    assert consult.status == "scheduled" and consult.assigned_specialist_id == specialist.id
    assert "appointment.booked" in notifications_of(db, specialist)
    remaining = client.get(
        "/api/slots",
        params={
            "specialty_id": specialty.id,
            "start": slots[0].starts_at.isoformat(),
            "end": (slots[0].starts_at + timedelta(hours=3)).isoformat(),
        },
    ).json()
    assert slots[0].starts_at not in [datetime.fromisoformat(s["starts_at"]) for s in remaining]
    assert len(remaining) == len(slots) - 1


def test_second_booking_of_a_slot_gets_409_with_next_slots(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    first, second = make_consult(db, gp, specialty), make_consult(db, gp, specialty)
    login(client, gp)
    assert book(client, first, specialist, slots[0].starts_at.isoformat()).status_code == 201
    lost = book(client, second, specialist, slots[0].starts_at.isoformat())
    assert lost.status_code == 409
    error = lost.json()["error"]
    assert error["code"] == "slot_taken"
    assert datetime.fromisoformat(error["next_slots"][0]["starts_at"]) == slots[1].starts_at
    assert len(appointments_of(db, specialist)) == 1
    db.refresh(second)
    assert second.status == "requested" and second.assigned_specialist_id is None


def test_database_refuses_two_active_appointments_for_one_slot(db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    rows = [
        Appointment(
            consult_request_id=make_consult(db, gp, specialty).id or 0,
            specialist_id=specialist.id or 0,
            starts_at=slots[0].starts_at,
            ends_at=slots[0].ends_at,
            booked_by_id=gp.id or 0,
        )
        for _ in range(2)
    ]
    db.add(rows[0])
    db.commit()
    db.add(rows[1])
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()
    # A cancelled one does not count: the slot can be booked again.
    rows[0].status = AppointmentStatus.CANCELLED
    db.add(rows[0])
    db.commit()
    again = Appointment(**rows[1].model_dump(exclude={"id"}))
    db.add(again)
    db.commit()
    assert [a.status for a in appointments_of(db, specialist)] == ["cancelled", "active"]


def test_a_lost_race_is_told_apart_by_the_index_it_hits(
    database_url: str, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    winner, loser = make_consult(db, gp, specialty), make_consult(db, gp, specialty)
    # The winner's row, committed while the loser's checks ran: they did not see it.
    db.add(
        Appointment(
            consult_request_id=winner.id or 0,
            specialist_id=specialist.id or 0,
            starts_at=slots[0].starts_at,
            ends_at=slots[0].ends_at,
            booked_by_id=gp.id or 0,
        )
    )
    db.commit()
    blind = search.offered_slot
    monkeypatch.setattr(
        booking,
        "offered_slot",
        lambda session, who, at, include_booked: blind(session, who, at, include_booked=False),
    )
    with Session(engine_for(database_url), expire_on_commit=False) as tx:
        with pytest.raises(SlotTaken) as taken:
            booking.book(tx, gp, tx.merge(loser), specialist.id or 0, slots[0].starts_at)
        # The consult was booked meanwhile, at another time.
        with pytest.raises(Conflict) as booked:
            booking.book(tx, gp, tx.merge(winner), specialist.id or 0, slots[1].starts_at)
    assert taken.value.extra["next_slots"][0]["starts_at"] == slots[1].starts_at.isoformat()
    assert booked.value.code == "already_scheduled"
    assert len(appointments_of(db, specialist)) == 1


def test_gp_cannot_book_another_clinics_consult(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    consult = make_consult(db, gp, specialty)
    stranger = make_user(db, Role.GP, organisation=make_organisation(db, kind=OrgKind.CLINIC))
    login(client, stranger)
    response = book(client, consult, specialist, slots[0].starts_at.isoformat())
    assert response.status_code == 404
    assert appointments_of(db, specialist) == []


@pytest.mark.parametrize(
    ("shift", "code", "status"),
    [(timedelta(minutes=10), "not_a_slot", 422), (timedelta(days=-30), "slot_in_past", 422)],
)
def test_times_off_the_roster_are_refused(
    client: TestClient, db: Session, shift: timedelta, code: str, status: int
) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    consult = make_consult(db, gp, specialty)
    login(client, gp)
    response = book(client, consult, specialist, (slots[0].starts_at + shift).isoformat())
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert appointments_of(db, specialist) == []


def test_specialist_of_another_specialty_cannot_be_booked(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    consult = make_consult(db, gp, make_specialty(db))
    login(client, gp)
    assert book(client, consult, specialist, slots[0].starts_at.isoformat()).status_code == 404


def test_specialist_cancels_gp_is_told_and_slot_is_free(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    consult = make_consult(db, gp, specialty)
    login(client, gp)
    booked = book(client, consult, specialist, slots[0].starts_at.isoformat()).json()
    login(other_client, specialist)
    no_reason = other_client.post(f"/api/appointments/{booked['id']}/cancel", json={"reason": ""})
    assert no_reason.status_code == 422
    cancelled = other_client.post(
        f"/api/appointments/{booked['id']}/cancel", json={"reason": "surgery overran"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert "appointment.cancelled" in notifications_of(db, gp)
    db.refresh(consult)
    assert consult.status == "requested"
    again = book(
        client, make_consult(db, gp, specialty), specialist, slots[0].starts_at.isoformat()
    )
    assert again.status_code == 201


def test_gp_reschedules_specialist_is_told(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    consult = make_consult(db, gp, specialty)
    login(client, gp)
    booked = book(client, consult, specialist, slots[0].starts_at.isoformat()).json()
    moved = client.post(
        f"/api/appointments/{booked['id']}/reschedule",
        json={"starts_at": slots[2].starts_at.isoformat(), "reason": "patient's ferry delayed"},
    )
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["starts_at"]) == slots[2].starts_at
    assert [a.status for a in appointments_of(db, specialist)] == ["rescheduled", "active"]
    assert "appointment.rescheduled" in notifications_of(db, specialist)
    db.refresh(consult)
    assert consult.status == "scheduled"


def test_failed_reschedule_changes_nothing(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    login(client, gp)
    mine = book(
        client, make_consult(db, gp, specialty), specialist, slots[0].starts_at.isoformat()
    ).json()
    assert (
        book(
            client, make_consult(db, gp, specialty), specialist, slots[1].starts_at.isoformat()
        ).status_code
        == 201
    )
    clash = client.post(
        f"/api/appointments/{mine['id']}/reschedule",
        json={"starts_at": slots[1].starts_at.isoformat(), "reason": "try the next one"},
    )
    assert clash.status_code == 409
    assert [a.status for a in appointments_of(db, specialist)] == ["active", "active"]


def test_outsiders_cannot_cancel(client: TestClient, other_client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    login(client, gp)
    booked = book(
        client, make_consult(db, gp, specialty), specialist, slots[0].starts_at.isoformat()
    ).json()
    login(other_client, make_specialist(db, make_hospital(db), specialty))
    response = other_client.post(
        f"/api/appointments/{booked['id']}/cancel", json={"reason": "not mine"}
    )
    assert response.status_code == 404
    assert appointments_of(db, specialist)[0].status == "active"


def test_booking_page_lists_slots_and_books(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    consult = make_consult(db, gp, specialty)
    token = login(client, gp)
    page = client.get(
        "/schedule/book",
        params={"consult": consult.public_id, "start": future_day().isoformat(), "days": 1},
    )
    assert page.status_code == 200 and slots[0].starts_at.isoformat() in page.text
    form = {
        "csrf_token": token,
        "consult": consult.public_id,
        "specialist_id": str(specialist.id),
        "starts_at": slots[0].starts_at.isoformat(),
    }
    done = client.post("/schedule/book", data=form, follow_redirects=False)
    assert done.status_code == 303
    retry = client.post(
        "/schedule/book", data={**form, "consult": make_consult(db, gp, specialty).public_id}
    )
    assert retry.status_code == 409 and slots[1].starts_at.isoformat() in retry.text
    listing = client.get("/schedule/appointments")
    assert listing.status_code == 200 and "C-0001" in listing.text
    assert len(appointments_of(db, specialist)) == 1
