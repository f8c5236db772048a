"""The secret iCalendar feed: valid iCalendar, no patient data, revoke and renew."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlmodel import Session, select

from server.accounts.models import Role
from server.scheduling import rosters, search
from server.scheduling.models import CalendarFeed
from tests.factories import login, make_specialty, make_user
from tests.scheduling.factories import (
    every_day,
    future_day,
    make_consult,
    make_hospital,
    make_specialist,
)


def test_feed_lists_appointments_and_can_be_revoked_and_renewed(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    specialty = make_specialty(db)
    specialist = make_specialist(db, make_hospital(db), specialty)
    every_day(db, specialist)
    gp = make_user(db, Role.GP)
    start, end = rosters.local_day_bounds(future_day(), rosters.zone("Asia/Seoul"))
    slot = search.search_slots(
        db, specialty_id=specialty.id or 0, start=start, end=end, home_region_id=None
    )[0]
    consult = make_consult(db, gp, specialty)
    login(other_client, gp)
    booked = other_client.post(
        "/api/appointments",
        json={
            "consult_id": consult.public_id,
            "specialist_id": specialist.id,
            "starts_at": slot.starts_at.isoformat(),
        },
    )
    assert booked.status_code == 201

    login(client, specialist)
    url = client.post("/api/calendar/feed").json()["url"]
    assert url.endswith(".ics")
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    stored = db.exec(select(CalendarFeed).where(CalendarFeed.specialist_id == specialist.id)).one()
    assert stored.token_hash and token not in stored.token_hash  # only a hash is kept

    anonymous = TestClient(client.app)
    feed = anonymous.get(f"/calendar/{token}.ics")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(feed.content)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    assert events[0].decoded("dtstart") == slot.starts_at
    assert events[0].decoded("dtend") - events[0].decoded("dtstart") == timedelta(minutes=20)
    assert "C-0001" not in feed.text and "chest pain" not in feed.text  # no patient data

    renewed = client.post("/api/calendar/feed").json()["url"]
    assert anonymous.get(f"/calendar/{token}.ics").status_code == 404
    new_token = renewed.rsplit("/", 1)[1].removesuffix(".ics")
    assert anonymous.get(f"/calendar/{new_token}.ics").status_code == 200
    assert client.delete("/api/calendar/feed").status_code == 204
    assert anonymous.get(f"/calendar/{new_token}.ics").status_code == 404
    assert client.delete("/api/calendar/feed").status_code == 404
    anonymous.close()


def test_only_specialists_have_feeds(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.GP))
    assert client.post("/api/calendar/feed").status_code == 403
    assert TestClient(client.app).get("/calendar/not-a-real-token.ics").status_code == 404
