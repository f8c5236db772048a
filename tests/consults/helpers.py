"""Arranging consults for tests: a clinic, a specialty pool and consults in any status."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TypeVar

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.resource import Resource
from PIL import Image
from sqlmodel import Session

from server.accounts.models import Organisation, Role, Specialty, User
from server.clock import utcnow
from server.consults.models import (
    ConsultMode,
    ConsultReport,
    ConsultRequest,
    ConsultStatus,
    Sex,
)
from tests.factories import make_organisation, make_specialty, make_user

ResourceT = TypeVar("ResourceT", bound=Resource)


def resources(bundle: Bundle, kind: type[ResourceT]) -> list[ResourceT]:
    """The bundle's resources of one FHIR type (parsed as that type's class)."""
    return [e.resource for e in bundle.entry or [] if isinstance(e.resource, kind)]


@dataclass
class Team:
    clinic: Organisation
    gp: User
    specialty: Specialty
    specialist: User
    hospital: Organisation


def make_team(db: Session) -> Team:
    clinic = make_organisation(db)
    specialty = make_specialty(db)
    specialist = make_user(db, Role.SPECIALIST, specialty=specialty)
    hospital = db.get(Organisation, specialist.organisation_id)
    assert hospital is not None
    return Team(
        clinic, make_user(db, Role.GP, organisation=clinic), specialty, specialist, hospital
    )


ASSIGNED_STATUSES = {
    ConsultStatus.ACCEPTED,
    ConsultStatus.SCHEDULED,
    ConsultStatus.IN_PROGRESS,
    ConsultStatus.REPORT_PENDING,
    ConsultStatus.COMPLETED,
    ConsultStatus.NO_SHOW,
}


def make_consult(
    db: Session,
    team: Team,
    status: ConsultStatus = ConsultStatus.REQUESTED,
    *,
    mode: ConsultMode = ConsultMode.ASYNC,
    signed_report: bool = False,
) -> ConsultRequest:
    """A consult row put straight into `status` (assigned when the status implies it)."""
    assigned = status in ASSIGNED_STATUSES
    consult = ConsultRequest(
        organisation_id=team.clinic.id or 0,
        requester_id=team.gp.id or 0,
        specialty_id=team.specialty.id or 0,
        assigned_specialist_id=team.specialist.id if assigned else None,
        assigned_organisation_id=team.hospital.id if assigned else None,
        status=status,
        mode=mode,
        patient_chart_number="C-2024-0042",
        patient_age=67,
        patient_sex=Sex.FEMALE,
        clinical_question="Chest pain on exertion for two weeks; ECG attached.",
        requested_at=None if status == ConsultStatus.DRAFT else utcnow(),
    )
    db.add(consult)
    db.commit()
    if signed_report:
        db.add(
            ConsultReport(
                consult_id=consult.id or 0,
                version=1,
                author_id=team.specialist.id or 0,
                findings="Stable angina likely.",
                signed_at=utcnow(),
                content_hash="0" * 64,
            )
        )
        db.commit()
    return consult


def png_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), (10, 120, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def dicom_bytes() -> bytes:
    return b"\x00" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00" + b"\x00" * 64


def pdf_bytes() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
