"""Consults for the notes tests, made directly with the model (the consults domain is elsewhere)."""

from __future__ import annotations

from sqlmodel import Session

from server.accounts.models import Role, User
from server.consults.models import ConsultRequest, ConsultStatus
from tests.factories import make_consult_row, make_organisation, make_specialty, make_user


def make_consult(
    db: Session,
    *,
    gp: User | None = None,
    specialist: User | None = None,
    status: ConsultStatus = ConsultStatus.IN_PROGRESS,
) -> ConsultRequest:
    gp = gp or make_user(db, Role.GP)
    specialty_id = specialist.specialty_id if specialist else make_specialty(db).id
    return make_consult_row(
        db,
        gp,
        specialty_id or 0,
        specialist=specialist,
        status=status,
        patient_age=61,
        clinical_question="흉통이 있습니다. 심전도 소견 자문 부탁드립니다.",
    )


def consult_with_pair(db: Session) -> tuple[ConsultRequest, User, User]:
    """A consult in progress with its GP and its assigned specialist."""
    gp = make_user(db, Role.GP)
    specialist = make_user(db, Role.SPECIALIST, organisation=make_organisation(db))
    return make_consult(db, gp=gp, specialist=specialist), gp, specialist
