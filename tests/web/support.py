"""Arranging a consult with its two participants, for the call page's tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from server.accounts.models import OrgKind, Role, User
from server.consults.models import ConsultRequest, ConsultStatus
from tests.factories import make_consult_row, make_organisation, make_specialty, make_user


@dataclass
class CallCase:
    consult: ConsultRequest
    gp: User
    specialist: User


def make_call_case(db: Session) -> CallCase:
    """A scheduled video consult: a GP's clinic asks, an assigned specialist answers."""
    clinic = make_organisation(db, kind=OrgKind.CLINIC)
    hospital = make_organisation(db, kind=OrgKind.HOSPITAL, is_hub=True)
    specialty = make_specialty(db)
    gp = make_user(db, Role.GP, organisation=clinic)
    specialist = make_user(db, Role.SPECIALIST, organisation=hospital, specialty=specialty)
    # Plain names, so that the guide's screenshots read like a real consult.
    gp.name, specialist.name = "김민지", "이서준"
    clinic.name_ko, clinic.name_en = "산골보건진료소", "Sangol health post"
    hospital.name_ko, hospital.name_en = "지역거점병원", "Regional hub hospital"
    specialty.name_ko, specialty.name_en = "심장내과", "Cardiology"
    for row in (gp, specialist, clinic, hospital, specialty):
        db.add(row)
    db.commit()
    consult = make_consult_row(
        db,
        gp,
        specialty.id or 0,
        specialist=specialist,
        status=ConsultStatus.SCHEDULED,
        patient_chart_number="C-0147",
        patient_age=67,
        clinical_question="Chest pain on exertion for two weeks; ECG attached.",
    )
    return CallCase(consult=consult, gp=gp, specialist=specialist)
