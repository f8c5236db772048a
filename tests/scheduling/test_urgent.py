"""On call now, urgent rings (regional first), first accept wins, escalation."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.accounts.models import OrgKind, Role, User
from server.clock import utcnow
from server.errors import Conflict
from server.notifications.models import Notification
from server.scheduling import urgent
from server.scheduling.models import (
    ExceptionKind,
    RingLevel,
    RosterException,
    RuleKind,
    UrgentRequest,
)
from tests.factories import login, make_organisation, make_region, make_specialty, make_user
from tests.scheduling.factories import make_consult, make_hospital, make_rule, make_specialist


def on_call_all_week(db: Session, specialist: User) -> None:
    for weekday in range(7):
        make_rule(
            db, specialist, weekday, time(0, 0), time(0, 0), kind=RuleKind.ONCALL, slot_minutes=60
        )


def kinds_for(db: Session, user: User) -> list[str]:
    return [
        n.kind for n in db.exec(select(Notification).where(Notification.user_id == user.id)).all()
    ]


def test_oncall_now_follows_local_hours_and_leave(db: Session) -> None:
    specialty = make_specialty(db)
    home = make_region(db)
    seoul = make_specialist(db, make_hospital(db, home), specialty)
    berlin = make_specialist(db, make_hospital(db, tz="Europe/Berlin"), specialty)
    away = make_specialist(db, make_hospital(db, home), specialty)
    # Monday 2027-03-29: 18:00-08:00 nights in Seoul; 08:00-20:00 in Berlin (summer time).
    make_rule(
        db, seoul, 0, time(18, 0), time(0, 0), kind=RuleKind.ONCALL, valid_from=date(2027, 1, 1)
    )
    make_rule(
        db, berlin, 0, time(8, 0), time(20, 0), kind=RuleKind.ONCALL, valid_from=date(2027, 1, 1)
    )
    make_rule(
        db, away, 0, time(18, 0), time(0, 0), kind=RuleKind.ONCALL, valid_from=date(2027, 1, 1)
    )
    at = datetime(2027, 3, 29, 10, 0, tzinfo=UTC)  # 19:00 in Seoul, 12:00 in Berlin
    db.add(
        RosterException(
            specialist_id=away.id or 0,
            kind=ExceptionKind.LEAVE,
            starts_at=at - timedelta(hours=1),
            ends_at=at + timedelta(hours=1),
        )
    )
    db.commit()
    found = urgent.oncall_now(db, specialty.id or 0, at, home.id)
    assert [(o.specialist.id, o.regional) for o in found] == [(seoul.id, True), (berlin.id, False)]
    # 06:00 UTC is 08:00 in Berlin (on) and 15:00 in Seoul (off).
    early = urgent.oncall_now(
        db, specialty.id or 0, datetime(2027, 3, 29, 6, 0, tzinfo=UTC), home.id
    )
    assert [o.specialist.id for o in early] == [berlin.id]


def test_urgent_rings_regional_first_and_first_accept_wins(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    specialty = make_specialty(db)
    home = make_region(db)
    gp = make_user(
        db, Role.GP, organisation=make_organisation(db, kind=OrgKind.CLINIC, region=home)
    )
    first, second = (make_specialist(db, make_hospital(db, home), specialty) for _ in range(2))
    far = make_specialist(db, make_hospital(db), specialty)
    for person in (first, second, far):
        on_call_all_week(db, person)
    consult = make_consult(db, gp, specialty)
    login(client, gp)
    started = client.post("/api/urgent", json={"consult_id": consult.public_id})
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["level"] == "regional" and sorted(body["rung"]) == sorted(
        [first.id or 0, second.id or 0]
    )
    assert "urgent.ring" in kinds_for(db, first) and "urgent.ring" not in kinds_for(db, far)
    assert client.post("/api/urgent", json={"consult_id": consult.public_id}).status_code == 409

    login(other_client, far)  # not rung: cannot take it
    assert other_client.post(f"/api/urgent/{body['id']}/accept").status_code == 404
    login(other_client, second)
    taken = other_client.post(f"/api/urgent/{body['id']}/accept")
    assert taken.status_code == 200 and taken.json()["accepted_by_id"] == second.id
    with TestClient(client.app) as third:
        login(third, first)
        late = third.post(f"/api/urgent/{body['id']}/accept")
        assert late.status_code == 409 and late.json()["error"]["code"] == "already_taken"
    db.refresh(consult)
    assert consult.assigned_specialist_id == second.id and consult.urgency == "urgent"
    assert "urgent.taken" in kinds_for(db, first)
    assert "urgent.accepted" in kinds_for(db, gp)


def test_simultaneous_accepts_have_one_winner(db: Session, database_url: str) -> None:
    """Accept called at once from threads with their own sessions: the database decides."""
    from server.db import engine_for

    specialty = make_specialty(db)
    home = make_region(db)
    gp = make_user(
        db, Role.GP, organisation=make_organisation(db, kind=OrgKind.CLINIC, region=home)
    )
    people = [make_specialist(db, make_hospital(db, home), specialty) for _ in range(6)]
    for person in people:
        on_call_all_week(db, person)
    consult = make_consult(db, gp, specialty)
    engine = engine_for(database_url)
    with Session(engine) as session:
        item = urgent.start_urgent(session, session.get(User, gp.id) or gp, session.merge(consult))
        session.commit()
        urgent_id = item.id or 0
    barrier = threading.Barrier(len(people))
    results: list[str] = []

    def try_accept(person: User) -> None:
        barrier.wait(timeout=30)
        with Session(engine) as session:
            try:
                urgent.accept(session, session.get(User, person.id) or person, urgent_id)
                session.commit()
                results.append("won")
            except Conflict as error:  # the losers
                session.rollback()
                results.append(error.code)

    threads = [threading.Thread(target=try_accept, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["already_taken"] * 5 + ["won"]


def test_unanswered_ring_escalates_to_the_nation_and_alerts_admins(
    client: TestClient, db: Session
) -> None:
    specialty = make_specialty(db)
    home = make_region(db)
    clinic = make_organisation(db, kind=OrgKind.CLINIC, region=home)
    gp = make_user(db, Role.GP, organisation=clinic)
    admin = make_user(db, Role.ADMIN, organisation=make_hospital(db, home))
    regional = make_specialist(db, make_hospital(db, home), specialty)
    national = make_specialist(db, make_hospital(db), specialty)
    on_call_all_week(db, regional)
    on_call_all_week(db, national)
    consult = make_consult(db, gp, specialty)
    login(client, gp)
    urgent_id = client.post("/api/urgent", json={"consult_id": consult.public_id}).json()["id"]
    now = utcnow()
    assert urgent_id not in urgent.escalate_stale_rings(db, now + timedelta(minutes=5))
    db.commit()
    assert urgent_id in urgent.escalate_stale_rings(db, now + timedelta(minutes=11))
    db.commit()
    item = db.get(UrgentRequest, urgent_id)
    assert item is not None
    db.refresh(item)
    assert item.level == RingLevel.NATIONAL
    db.refresh(consult)
    assert consult.status == "escalated" and consult.escalated_at is not None
    assert "urgent.ring" in kinds_for(db, national)
    assert "urgent.escalated" in kinds_for(db, admin)
    # Only once, even if called again.
    assert urgent_id not in urgent.escalate_stale_rings(db, now + timedelta(minutes=30))
    db.commit()
    assert kinds_for(db, national).count("urgent.ring") == 1


def test_no_regional_oncall_goes_national_at_once(client: TestClient, db: Session) -> None:
    specialty = make_specialty(db)
    home = make_region(db)
    gp = make_user(
        db, Role.GP, organisation=make_organisation(db, kind=OrgKind.CLINIC, region=home)
    )
    far = make_specialist(db, make_hospital(db), specialty)
    on_call_all_week(db, far)
    login(client, gp)
    response = client.post(
        "/api/urgent", json={"consult_id": make_consult(db, gp, specialty).public_id}
    )
    assert response.status_code == 201
    assert response.json()["level"] == "national" and response.json()["rung"] == [far.id]


def test_oncall_endpoint_and_other_clinic(client: TestClient, db: Session) -> None:
    specialty = make_specialty(db)
    home = make_region(db)
    gp = make_user(
        db, Role.GP, organisation=make_organisation(db, kind=OrgKind.CLINIC, region=home)
    )
    person = make_specialist(db, make_hospital(db, home), specialty)
    on_call_all_week(db, person)
    login(client, gp)
    listed = client.get("/api/oncall", params={"specialty_id": specialty.id}).json()
    assert [(o["specialist_id"], o["regional"]) for o in listed] == [(person.id, True)]
    other_consult = make_consult(db, make_user(db, Role.GP), specialty)
    assert (
        client.post("/api/urgent", json={"consult_id": other_consult.public_id}).status_code == 404
    )
    assert (
        db.exec(
            select(UrgentRequest).where(UrgentRequest.consult_request_id == other_consult.id)
        ).first()
        is None
    )


def test_lifespan_task_escalates_stale_rings(
    db: Session, database_url: str, tmp_path: Path
) -> None:
    import asyncio

    from server.db import engine_for
    from tests.conftest import make_settings

    specialty = make_specialty(db)
    home = make_region(db)
    gp = make_user(
        db, Role.GP, organisation=make_organisation(db, kind=OrgKind.CLINIC, region=home)
    )
    on_call_all_week(db, make_specialist(db, make_hospital(db, home), specialty))
    consult = make_consult(db, gp, specialty)
    long_ago = utcnow() - timedelta(minutes=15)
    item = UrgentRequest(
        consult_request_id=consult.id or 0,
        specialty_id=specialty.id or 0,
        region_id=home.id or 0,
        started_at=long_ago,
        level_started_at=long_ago,
    )
    db.add(item)
    db.commit()
    settings = make_settings(
        database_url, tmp_path, urgent_check_seconds=1, urgent_escalate_minutes=10
    )

    def escalated() -> bool:
        db.expire_all()
        current = db.get(UrgentRequest, item.id)
        return current is not None and current.level == RingLevel.NATIONAL

    async def run_task() -> None:
        async with urgent.escalation_task(engine_for(database_url), settings):
            for _ in range(50):
                await asyncio.sleep(0.1)
                if await asyncio.to_thread(escalated):
                    return

    # Its own thread and event loop, as in the app's lifespan; cancelled on exit.
    runner = threading.Thread(target=asyncio.run, args=(run_task(),))
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive()
    assert escalated()
