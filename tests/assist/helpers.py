"""Arranging the assist's tests: the seed's specialties, consenting organisations."""

from __future__ import annotations

from sqlmodel import Session, select

from server.accounts.models import Organisation, Specialty
from server.assist.models import AssistConsent

SEED_SPECIALTIES = {
    "cardiology": ("심장내과", "Cardiology"),
    "dermatology": ("피부과", "Dermatology"),
    "endocrinology": ("내분비내과", "Endocrinology"),
    "neurology": ("신경과", "Neurology"),
    "pediatrics": ("소아청소년과", "Pediatrics"),
    "psychiatry": ("정신건강의학과", "Psychiatry"),
}


def specialty(db: Session, code: str) -> Specialty:
    """The specialty with this seed code, created once per test database."""
    found = db.exec(select(Specialty).where(Specialty.code == code)).first()
    if found is not None:
        return found
    name_ko, name_en = SEED_SPECIALTIES[code]
    created = Specialty(code=code, name_ko=name_ko, name_en=name_en)
    db.add(created)
    db.commit()
    return created


def seed_specialties(db: Session) -> dict[str, Specialty]:
    return {code: specialty(db, code) for code in SEED_SPECIALTIES}


def consent(db: Session, organisation: Organisation | int, enabled: bool = True) -> None:
    organisation_id = organisation if isinstance(organisation, int) else organisation.id or 0
    row = db.get(AssistConsent, organisation_id) or AssistConsent(organisation_id=organisation_id)
    row.enabled = enabled
    db.add(row)
    db.commit()
