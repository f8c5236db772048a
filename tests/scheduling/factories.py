"""Scheduling factories: consults, hospitals with specialists, roster rules."""

from __future__ import annotations

from datetime import date, time, timedelta

from sqlmodel import Session

from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.clock import utcnow
from server.consults.models import ConsultRequest, ConsultStatus
from server.scheduling.models import RosterRule, RuleKind
from tests.factories import make_consult_row, make_organisation, make_region, make_user


def make_consult(
    db: Session,
    requester: User,
    specialty: Specialty,
    *,
    status: ConsultStatus = ConsultStatus.REQUESTED,
) -> ConsultRequest:
    return make_consult_row(
        db,
        requester,
        specialty.id or 0,
        status=status,
        patient_chart_number="C-0001",
        requested_at=utcnow(),
    )


def make_hospital(
    db: Session, region: Region | None = None, *, hub: bool = True, tz: str = "Asia/Seoul"
) -> Organisation:
    return make_organisation(
        db, kind=OrgKind.HOSPITAL, region=region or make_region(db), is_hub=hub, timezone=tz
    )


def make_specialist(db: Session, hospital: Organisation, specialty: Specialty) -> User:
    return make_user(db, Role.SPECIALIST, organisation=hospital, specialty=specialty)


def make_rule(
    db: Session,
    specialist: User,
    weekday: int,
    start: time = time(9, 0),
    end: time = time(12, 0),
    *,
    kind: RuleKind = RuleKind.CONSULT,
    slot_minutes: int = 20,
    valid_from: date | None = None,
    valid_to: date | None = None,
) -> RosterRule:
    rule = RosterRule(
        specialist_id=specialist.id or 0,
        weekday=weekday,
        start_time=start,
        end_time=end,
        slot_minutes=slot_minutes,
        kind=kind,
        valid_from=valid_from or (utcnow().date() - timedelta(days=7)),
        valid_to=valid_to,
    )
    db.add(rule)
    db.commit()
    return rule


def every_day(
    db: Session,
    specialist: User,
    start: time = time(9, 0),
    end: time = time(12, 0),
    *,
    slot_minutes: int = 20,
) -> None:
    for weekday in range(7):
        make_rule(db, specialist, weekday, start, end, slot_minutes=slot_minutes)


def future_day(days: int = 8) -> date:
    return utcnow().date() + timedelta(days=days)
