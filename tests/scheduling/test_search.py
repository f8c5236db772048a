"""Slot search: regional routing with reasons, leave, bookings, the past, DST, bad input."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import OrgKind, Role
from server.clock import utcnow
from server.scheduling import rosters, search
from server.scheduling import slots as grid
from server.scheduling.models import Appointment, ExceptionKind, RosterException
from tests.factories import login, make_organisation, make_region, make_specialty, make_user
from tests.scheduling.factories import (
    every_day,
    future_day,
    make_consult,
    make_hospital,
    make_rule,
    make_specialist,
)


def seoul_day_window(day: date) -> tuple[datetime, datetime]:
    return rosters.local_day_bounds(day, rosters.zone("Asia/Seoul"))


def test_regional_hubs_first_then_region_then_nation(client: TestClient, db: Session) -> None:
    specialty = make_specialty(db)
    home = make_region(db)
    clinic = make_organisation(db, kind=OrgKind.CLINIC, region=home)
    gp = make_user(db, Role.GP, organisation=clinic)
    hub = make_specialist(db, make_hospital(db, home, hub=True), specialty)
    local = make_specialist(db, make_hospital(db, home, hub=False), specialty)
    far = make_specialist(db, make_hospital(db, hub=True), specialty)
    every_day(db, hub, time(11, 0), time(12, 0))
    every_day(db, local, time(10, 0), time(11, 0))
    every_day(db, far, time(9, 0), time(10, 0))
    start, end = seoul_day_window(future_day())
    login(client, gp)
    response = client.get(
        "/api/slots",
        params={
            "specialty_id": specialty.id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "limit": 50,
        },
    )
    assert response.status_code == 200, response.text
    slots = response.json()
    assert [s["specialist_id"] for s in slots] == [hub.id] * 3 + [local.id] * 3 + [far.id] * 3
    assert [s["reason"].split(":")[0] for s in slots[::3]] == [
        "regional_hub",
        "same_region",
        "national",
    ]
    # Within a tier, earliest first.
    assert slots[0]["starts_at"] < slots[1]["starts_at"] < slots[2]["starts_at"]
    earliest = search.search_slots(
        db,
        specialty_id=specialty.id or 0,
        start=start,
        end=end,
        home_region_id=home.id,
        policy="earliest",
    )
    assert [s.candidate.specialist_id for s in earliest[:3]] == [far.id] * 3
    assert earliest[0].reason.startswith("earliest")


def test_filters_by_hospital_and_region(client: TestClient, db: Session) -> None:
    specialty = make_specialty(db)
    a, b = make_hospital(db), make_hospital(db)
    every_day(db, make_specialist(db, a, specialty))
    every_day(db, make_specialist(db, b, specialty))
    start, end = seoul_day_window(future_day())
    login(client, make_user(db, Role.GP))
    params = {
        "specialty_id": specialty.id,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "limit": 100,
    }
    both = client.get("/api/slots", params=params).json()
    only_a = client.get("/api/slots", params={**params, "organisation_id": a.id}).json()
    only_b_region = client.get("/api/slots", params={**params, "region_id": b.region_id}).json()
    assert len(both) == 18
    assert {s["organisation_id"] for s in only_a} == {a.id} and len(only_a) == 9
    assert {s["organisation_id"] for s in only_b_region} == {b.id}


def test_leave_bookings_and_the_past_are_not_offered(db: Session) -> None:
    specialty = make_specialty(db)
    specialist = make_specialist(db, make_hospital(db), specialty)
    every_day(db, specialist)  # 09:00-12:00 Seoul = 00:00-03:00 UTC
    day = future_day()
    start, end = seoul_day_window(day)
    db.add(
        RosterException(
            specialist_id=specialist.id or 0,
            kind=ExceptionKind.LEAVE,
            starts_at=start + timedelta(hours=10),  # 10:00-11:00 local
            ends_at=start + timedelta(hours=11),
        )
    )
    consult = make_consult(db, make_user(db, Role.GP), specialty)
    db.add(
        Appointment(
            consult_request_id=consult.id or 0,
            specialist_id=specialist.id or 0,
            starts_at=start + timedelta(hours=9),
            ends_at=start + timedelta(hours=9, minutes=20),
            booked_by_id=consult.requester_id,
        )
    )
    db.commit()
    found = search.search_slots(
        db,
        specialty_id=specialty.id or 0,
        start=start,
        end=end,
        home_region_id=None,
        now=start + timedelta(hours=9, minutes=30),
        limit=50,
    )
    local_times = [
        s.starts_at.astimezone(rosters.zone("Asia/Seoul")).strftime("%H:%M") for s in found
    ]
    assert local_times == ["09:40", "11:00", "11:20", "11:40"]


def test_slots_follow_local_time_across_dst(db: Session) -> None:
    specialty = make_specialty(db)
    specialist = make_specialist(db, make_hospital(db, tz="Europe/Berlin"), specialty)
    make_rule(
        db, specialist, 0, time(9, 0), time(10, 0), slot_minutes=30, valid_from=date(2027, 3, 1)
    )
    found = search.search_slots(
        db,
        specialty_id=specialty.id or 0,
        start=datetime(2027, 3, 20, tzinfo=UTC),
        end=datetime(2027, 4, 1, tzinfo=UTC),
        home_region_id=None,
        now=datetime(2027, 3, 1, tzinfo=UTC),
    )
    assert [s.starts_at for s in found] == [
        datetime(2027, 3, 22, 8, 0, tzinfo=UTC),  # CET, UTC+1
        datetime(2027, 3, 22, 8, 30, tzinfo=UTC),
        datetime(2027, 3, 29, 7, 0, tzinfo=UTC),  # CEST, UTC+2: still 09:00 local
        datetime(2027, 3, 29, 7, 30, tzinfo=UTC),
    ]


def test_bad_searches_get_clear_422(client: TestClient, db: Session) -> None:
    specialty = make_specialty(db)
    login(client, make_user(db, Role.GP))
    now = utcnow()
    cases: list[tuple[dict[str, str | int | None], str]] = [
        (
            {
                "specialty_id": specialty.id,
                "start": now.isoformat(),
                "end": (now + timedelta(days=365)).isoformat(),
            },
            "window_too_long",
        ),
        (
            {
                "specialty_id": specialty.id,
                "start": now.isoformat(),
                "end": (now - timedelta(days=1)).isoformat(),
            },
            "end_before_start",
        ),
        ({"specialty_id": 987654321}, "unknown_specialty"),
        ({"specialty_id": "cardio"}, "validation_error"),
        ({"specialty_id": specialty.id, "limit": 0}, "validation_error"),
    ]
    for params, code in cases:
        response = client.get("/api/slots", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == code


def test_search_needs_a_login(client: TestClient) -> None:
    assert client.get("/api/slots", params={"specialty_id": 1}).status_code == 401


def test_search_in_pieces_equals_one_pass_over_the_window(db: Session) -> None:
    """The piecewise search (day, two days, four, rest) loses and duplicates nothing."""
    specialty = make_specialty(db)
    tz_name = "Europe/Berlin"
    people = [make_specialist(db, make_hospital(db, tz=tz_name), specialty) for _ in range(3)]
    for index, person in enumerate(people):
        every_day(db, person, time(23, 0), time(0, 0), slot_minutes=25 + index * 10)
        every_day(db, person, time(8, 0), time(9, 0), slot_minutes=20)
    db.add(
        RosterException(
            specialist_id=people[0].id or 0,
            kind=ExceptionKind.EXTRA,
            starts_at=datetime(2027, 3, 27, 22, 30, tzinfo=UTC),
            ends_at=datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
            slot_minutes=30,
        )
    )
    db.commit()
    tz = rosters.zone(tz_name)
    for offset_hours in (0, 7, 22, 23.5):
        start = datetime(2027, 3, 24, tzinfo=UTC) + timedelta(hours=offset_hours)
        end = start + timedelta(days=12)
        found = search.search_slots(
            db,
            specialty_id=specialty.id or 0,
            start=start,
            end=end,
            home_region_id=None,
            policy="earliest",
            limit=1000,
            now=datetime(2027, 1, 1, tzinfo=UTC),
        )
        expected = []
        for person in people:
            rules = [rosters.as_weekly(r) for r in rosters.list_rules(db, person.id or 0)]
            extras = [
                (grid.Interval(e.starts_at, e.ends_at), e.slot_minutes)
                for e in rosters.list_exceptions(db, person.id or 0)
            ]
            expected += [
                (s.starts_at, person.id) for s in grid.free_slots(rules, extras, [], tz, start, end)
            ]
        assert [(s.starts_at, s.candidate.specialist_id) for s in found] == sorted(expected)
        assert len(found) > 30
