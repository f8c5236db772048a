"""Response clocks: overdue requests are escalated and everyone concerned is told."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from server.accounts.models import Role
from server.app import create_app
from server.cli import app as cli
from server.consults import clocks
from server.consults.models import ConsultEvent, ConsultRequest, ConsultStatus, Urgency
from server.notifications.models import Notification
from server.settings import Settings, get_settings
from tests.conftest import make_settings
from tests.consults.helpers import make_consult, make_team
from tests.factories import login, make_user


def backdate(consult: ConsultRequest, hours: float) -> datetime:
    """Move the consult's request time `hours` into the past; the new time is returned."""
    assert consult.requested_at is not None
    consult.requested_at -= timedelta(hours=hours)
    return consult.requested_at


def test_targets_come_from_settings() -> None:
    settings = Settings(consult_target_minutes_urgent=5)
    assert clocks.target_for(Urgency.URGENT, settings) == timedelta(minutes=5)
    assert clocks.target_for(Urgency.SOON, settings) == timedelta(hours=24)
    assert clocks.target_for(Urgency.ROUTINE, settings) == timedelta(hours=72)


def test_escalate_overdue(db: Session, settings: Settings) -> None:
    team = make_team(db)
    colleague = make_user(db, Role.SPECIALIST, specialty=team.specialty)
    admin = make_user(db, Role.ADMIN, organisation=team.clinic)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    consult.urgency = Urgency.URGENT
    db.add(consult)
    db.commit()
    assert consult.requested_at is not None
    early = consult.requested_at + timedelta(minutes=29)
    assert consult not in clocks.escalate_overdue(db, early, settings)
    late = consult.requested_at + timedelta(minutes=31)
    assert clocks.is_overdue(consult, settings, late)
    escalated = clocks.escalate_overdue(db, late, settings)
    db.commit()
    assert consult.id in [c.id for c in escalated]
    stored = db.get(ConsultRequest, consult.id)
    assert stored is not None and stored.status == ConsultStatus.ESCALATED
    assert stored.escalated_at is not None
    event = db.exec(select(ConsultEvent).where(ConsultEvent.consult_id == consult.id)).one()
    assert event.actor_id is None and event.reason == "no specialist response in time"
    told = set(
        db.exec(select(Notification.user_id).where(Notification.kind == "consult.overdue")).all()
    )
    assert {team.specialist.id, colleague.id, admin.id} <= told
    # Escalated once: a second run changes nothing.
    assert consult.id not in [c.id for c in clocks.escalate_overdue(db, late, settings)]


def test_overdue_is_shown_and_answered_ones_are_not(
    client: TestClient, db: Session, settings: Settings
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    consult.urgency = Urgency.URGENT
    requested_at = backdate(consult, hours=1)
    db.add(consult)
    db.commit()
    login(client, team.gp)
    assert client.get(f"/api/consults/{consult.public_id}").json()["overdue"] is True
    listed = {c["id"]: c for c in client.get("/api/consults").json()}
    assert listed[consult.public_id]["overdue"] is True
    consult.status = ConsultStatus.ACCEPTED
    consult.first_response_at = requested_at
    assert not clocks.is_overdue(consult, settings, requested_at + timedelta(days=9))


def test_cli_escalates(db: Session, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    consult.urgency = Urgency.URGENT
    backdate(consult, hours=2)
    db.add(consult)
    db.commit()
    monkeypatch.setenv("DARI_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["consults", "escalate-overdue"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0 and "escalated" in result.output
    db.refresh(consult)
    assert consult.status == ConsultStatus.ESCALATED


def test_app_background_task_escalates_overdue_consults(
    db: Session, database_url: str, tmp_path: Path
) -> None:
    """The app's own periodic task (the one that escalates urgent rings) runs the
    response clocks too: no cron needed."""
    team = make_team(db)
    admin = make_user(db, Role.ADMIN, organisation=team.clinic)
    overdue = make_consult(db, team, ConsultStatus.REQUESTED)
    overdue.urgency = Urgency.URGENT
    backdate(overdue, hours=2)
    db.add(overdue)
    in_time = make_consult(db, team, ConsultStatus.REQUESTED)
    in_time.urgency = Urgency.ROUTINE
    db.add(in_time)
    db.commit()
    settings = make_settings(database_url, tmp_path, urgent_check_seconds=1)

    def status_of(consult: ConsultRequest) -> str:
        db.expire_all()
        stored = db.get(ConsultRequest, consult.id)
        assert stored is not None
        return str(stored.status)

    # Entering the client runs the app's lifespan, which starts the task.
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 20
        while status_of(overdue) != ConsultStatus.ESCALATED and time.monotonic() < deadline:
            time.sleep(0.1)
    assert status_of(overdue) == ConsultStatus.ESCALATED
    assert status_of(in_time) == ConsultStatus.REQUESTED
    told = db.exec(
        select(Notification.user_id).where(
            Notification.kind == "consult.overdue",
            col(Notification.payload).contains(overdue.public_id),
        )
    ).all()
    assert {team.specialist.id, admin.id} <= set(told)
    # Only once, however many rounds ran.
    events = db.exec(select(ConsultEvent).where(ConsultEvent.consult_id == overdue.id)).all()
    assert len(events) == 1


def test_background_task_is_off_when_the_interval_is_zero(
    db: Session, database_url: str, tmp_path: Path
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    consult.urgency = Urgency.URGENT
    backdate(consult, hours=2)
    db.add(consult)
    db.commit()
    settings = make_settings(database_url, tmp_path, urgent_check_seconds=0)
    with TestClient(create_app(settings)):
        time.sleep(1.5)
    db.refresh(consult)
    assert consult.status == ConsultStatus.REQUESTED
