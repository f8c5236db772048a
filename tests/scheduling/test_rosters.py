"""Roster rules and exceptions through the API: validation, authorisation, time zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from server.accounts.models import Role
from server.audit.models import AuditEvent
from server.scheduling.models import RosterException, RosterRule
from tests.factories import login, make_specialty, make_user
from tests.scheduling.factories import make_hospital, make_rule, make_specialist


def rule_count(db: Session, specialist_id: int) -> int:
    return db.exec(
        select(func.count())
        .select_from(RosterRule)
        .where(RosterRule.specialist_id == specialist_id)
    ).one()


RULE = {"weekday": 0, "start_time": "09:00", "end_time": "12:00", "valid_from": "2027-01-01"}


def test_specialist_adds_and_lists_own_rule(client: TestClient, db: Session) -> None:
    specialist = make_specialist(db, make_hospital(db), make_specialty(db))
    login(client, specialist)
    created = client.post(f"/api/rosters/{specialist.id}/rules", json=RULE)
    assert created.status_code == 201, created.text
    assert created.json()["slot_minutes"] == 20 and created.json()["kind"] == "consult"
    listed = client.get(f"/api/rosters/{specialist.id}/rules").json()
    assert [r["id"] for r in listed] == [created.json()["id"]]
    events = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "roster.rule_created", AuditEvent.actor_id == specialist.id
        )
    ).all()
    assert len(events) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"start_time": "12:00", "end_time": "09:00"}, "end_before_start"),
        ({"slot_minutes": 0}, "validation_error"),
        ({"slot_minutes": 240}, "bad_slot_length"),
        ({"weekday": 7}, "validation_error"),
        ({"valid_to": "2026-01-01"}, "end_before_start"),
        ({"kind": "holiday"}, "validation_error"),
    ],
)
def test_bad_rules_are_refused_and_nothing_written(
    client: TestClient, db: Session, change: dict[str, object], code: str
) -> None:
    specialist = make_specialist(db, make_hospital(db), make_specialty(db))
    login(client, specialist)
    response = client.post(f"/api/rosters/{specialist.id}/rules", json={**RULE, **change})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert rule_count(db, specialist.id or 0) == 0


def test_overlapping_rule_is_refused(client: TestClient, db: Session) -> None:
    specialist = make_specialist(db, make_hospital(db), make_specialty(db))
    login(client, specialist)
    assert client.post(f"/api/rosters/{specialist.id}/rules", json=RULE).status_code == 201
    overlapping = client.post(
        f"/api/rosters/{specialist.id}/rules",
        json={**RULE, "start_time": "11:40", "end_time": "13:00"},
    )
    assert overlapping.status_code == 409
    assert overlapping.json()["error"]["code"] == "overlapping_rule"
    # On call in the same hours is a different kind: allowed.
    oncall = client.post(f"/api/rosters/{specialist.id}/rules", json={**RULE, "kind": "oncall"})
    assert oncall.status_code == 201
    assert rule_count(db, specialist.id or 0) == 2


def test_admin_manages_own_hospital_but_not_another(client: TestClient, db: Session) -> None:
    specialty = make_specialty(db)
    hospital_a, hospital_b = make_hospital(db), make_hospital(db)
    admin_a = make_user(db, Role.ADMIN, organisation=hospital_a)
    mine = make_specialist(db, hospital_a, specialty)
    theirs = make_specialist(db, hospital_b, specialty)
    login(client, admin_a)
    assert client.post(f"/api/rosters/{mine.id}/rules", json=RULE).status_code == 201
    refused = client.post(f"/api/rosters/{theirs.id}/rules", json=RULE)
    assert refused.status_code == 404
    assert client.get(f"/api/rosters/{theirs.id}/rules").status_code == 404
    foreign_rule = make_rule(db, theirs, 2)
    assert client.delete(f"/api/rosters/rules/{foreign_rule.id}").status_code == 404
    assert rule_count(db, theirs.id or 0) == 1


def test_specialist_cannot_edit_a_colleagues_roster(client: TestClient, db: Session) -> None:
    hospital, specialty = make_hospital(db), make_specialty(db)
    me, colleague = (
        make_specialist(db, hospital, specialty),
        make_specialist(db, hospital, specialty),
    )
    login(client, me)
    response = client.post(f"/api/rosters/{colleague.id}/rules", json=RULE)
    assert response.status_code == 403
    assert rule_count(db, colleague.id or 0) == 0


def test_leave_is_entered_in_local_time_and_stored_utc(client: TestClient, db: Session) -> None:
    specialist = make_specialist(db, make_hospital(db, tz="Europe/Berlin"), make_specialty(db))
    login(client, specialist)
    # A whole day in summer time (UTC+2) and a morning in winter time (UTC+1).
    day = client.post(
        f"/api/rosters/{specialist.id}/exceptions",
        json={"kind": "leave", "date_from": "2027-07-01"},
    )
    assert day.status_code == 201, day.text
    hours = client.post(
        f"/api/rosters/{specialist.id}/exceptions",
        json={
            "kind": "leave",
            "date_from": "2027-12-01",
            "start_time": "09:00",
            "end_time": "12:00",
        },
    )
    assert hours.status_code == 201
    stored = db.exec(
        select(RosterException)
        .where(RosterException.specialist_id == specialist.id)
        .order_by(col(RosterException.starts_at))
    ).all()
    assert [(e.starts_at, e.ends_at) for e in stored] == [
        (datetime(2027, 6, 30, 22, tzinfo=UTC), datetime(2027, 7, 1, 22, tzinfo=UTC)),
        (datetime(2027, 12, 1, 8, tzinfo=UTC), datetime(2027, 12, 1, 11, tzinfo=UTC)),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "leave", "date_from": "2027-07-02", "date_to": "2027-07-01"},
        {"kind": "leave", "date_from": "2027-07-01", "start_time": "12:00", "end_time": "09:00"},
        {"kind": "extra", "date_from": "2027-07-01"},
        {"kind": "extra", "date_from": "2027-07-01", "start_time": "09:00"},
        {"kind": "vacation", "date_from": "2027-07-01"},
    ],
)
def test_bad_exceptions_are_refused(client: TestClient, db: Session, body: dict[str, str]) -> None:
    specialist = make_specialist(db, make_hospital(db), make_specialty(db))
    login(client, specialist)
    response = client.post(f"/api/rosters/{specialist.id}/exceptions", json=body)
    assert response.status_code == 422, response.text
    count = db.exec(
        select(func.count())
        .select_from(RosterException)
        .where(RosterException.specialist_id == specialist.id)
    ).one()
    assert count == 0


def test_roster_page_shows_rules_and_adds_by_form(client: TestClient, db: Session) -> None:
    specialist = make_specialist(db, make_hospital(db), make_specialty(db))
    token = login(client, specialist)
    make_rule(db, specialist, 1)
    page = client.get("/schedule/roster", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "09:00" in page.text
    assert "근무표" in page.text  # Korean by default
    added = client.post(
        f"/schedule/roster/{specialist.id}/rules",
        data={**RULE, "weekday": "3", "slot_minutes": "30", "csrf_token": token},
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert rule_count(db, specialist.id or 0) == 2
    bad = client.post(
        f"/schedule/roster/{specialist.id}/rules",
        data={**RULE, "weekday": "3", "slot_minutes": "0", "csrf_token": token},
        headers={"Accept": "text/html"},
    )
    assert bad.status_code == 422 and "Traceback" not in bad.text
    assert rule_count(db, specialist.id or 0) == 2
