"""A small, hand-computed set of consults in January 2020 (two regions, two weeks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session

from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.consults.models import ConsultMode, ConsultRequest, ConsultStatus, Outcome, Urgency
from tests.factories import (
    make_consult_row,
    make_organisation,
    make_region,
    make_specialty,
    make_user,
)

START = date(2020, 1, 6)  # a Monday


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2020, 1, day, hour, tzinfo=UTC)


@dataclass
class World:
    region_a: Region
    region_b: Region
    specialty: Specialty
    gp_a: User
    gp_b: User
    specialist: User
    consults: dict[str, ConsultRequest]


def _consult(
    db: Session,
    gp: User,
    world_specialty: Specialty,
    specialist: User,
    *,
    requested: datetime | None,
    response_h: float | None = None,
    report_h: float | None = None,
    status: ConsultStatus = ConsultStatus.COMPLETED,
    urgency: Urgency = Urgency.ROUTINE,
    mode: ConsultMode = ConsultMode.ASYNC,
    outcome: Outcome | None = None,
    escalated: bool = False,
) -> ConsultRequest:
    def plus(hours: float | None) -> datetime | None:
        if requested is None or hours is None:
            return None
        return requested + timedelta(hours=hours)

    return make_consult_row(
        db,
        gp,
        world_specialty.id or 0,
        specialist=specialist if response_h is not None else None,
        status=status,
        urgency=urgency,
        mode=mode,
        requested_at=requested,
        first_response_at=plus(response_h),
        report_signed_at=plus(report_h),
        outcome=outcome,
        escalated_at=plus(0.5) if escalated else None,
    )


def make_world(db: Session) -> World:
    """A1–A4 in region A, B1–B3 in region B, and a draft; see the expected figures below."""
    region_a, region_b = make_region(db), make_region(db)
    specialty = make_specialty(db)
    gp_a = make_user(db, Role.GP, organisation=make_organisation(db, region=region_a))
    gp_b = make_user(db, Role.GP, organisation=make_organisation(db, region=region_b))
    specialist = make_user(db, Role.SPECIALIST, specialty=specialty)
    S, U, M, OC = ConsultStatus, Urgency, ConsultMode, Outcome
    c = {
        "A1": _consult(
            db,
            gp_a,
            specialty,
            specialist,
            requested=at(6),
            response_h=1,
            report_h=5,
            outcome=OC.RESOLVED_WITHOUT_REFERRAL,
        ),
        "A2": _consult(
            db,
            gp_a,
            specialty,
            specialist,
            requested=at(7),
            response_h=2,
            report_h=20,
            outcome=OC.REFERRED,
        ),
        "A3": _consult(
            db,
            gp_a,
            specialty,
            specialist,
            requested=at(8),
            response_h=3,
            status=S.DECLINED,
            urgency=U.SOON,
        ),
        "A4": _consult(
            db,
            gp_a,
            specialty,
            specialist,
            requested=at(14),
            response_h=10,
            status=S.IN_PROGRESS,
            urgency=U.URGENT,
            mode=M.VIDEO,
            escalated=True,
        ),
        "B1": _consult(
            db,
            gp_b,
            specialty,
            specialist,
            requested=at(15),
            response_h=30,
            report_h=40,
            mode=M.VIDEO,
            outcome=OC.RESOLVED_WITHOUT_REFERRAL,
        ),
        "B2": _consult(db, gp_b, specialty, specialist, requested=at(16), status=S.REQUESTED),
        # Outside the two weeks, and a draft never sent: neither counts.
        "B3": _consult(
            db, gp_b, specialty, specialist, requested=at(20), response_h=1, status=S.ACCEPTED
        ),
        "draft": _consult(db, gp_b, specialty, specialist, requested=None, status=S.DRAFT),
    }
    return World(region_a, region_b, specialty, gp_a, gp_b, specialist, c)


def make_authority(db: Session, region: Region) -> User:
    office = make_organisation(db, kind=OrgKind.AUTHORITY, region=region)
    return make_user(db, Role.REGION_AUTHORITY, organisation=office)


__all__ = ["Organisation", "make_authority", "make_world"]
