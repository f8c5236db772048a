"""The FHIR bundle parses back with fhir.resources and carries no patient identity."""

from __future__ import annotations

import json

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.servicerequest import ServiceRequest
from sqlmodel import Session

from server import migrate
from server.consults import export, reports, service
from server.consults.access import Access, Viewing
from server.consults.models import ConsultStatus
from server.consults.schemas import ReportIn
from tests.consults.helpers import make_consult, make_team, resources


def test_bundle_for_a_new_request_validates(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    bundle = Bundle.model_validate_json(json.dumps(export.build_bundle(db, consult)))
    assert bundle.type == "collection"
    (patient,) = resources(bundle, Patient)
    assert patient.name is None and patient.birthDate is None
    assert [i.value for i in patient.identifier or []] == ["C-2024-0042"]
    (request,) = resources(bundle, ServiceRequest)
    assert request.status == "active" and request.performer is None
    assert not resources(bundle, DiagnosticReport)


def test_bundle_with_signed_and_amended_report(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    viewing = Viewing(consult, Access.ASSIGNED, team.specialist)
    service.post_message(db, viewing, "Please send an ECG.")
    reports.save_draft(
        db,
        viewing,
        ReportIn(findings="ST depression", referral_needed=True, referral_urgency="soon"),
    )
    reports.sign(db, viewing)
    reports.amend(db, viewing, "lead placement")
    reports.sign(db, viewing)
    db.commit()
    data = export.build_bundle(db, consult)
    bundle = Bundle.model_validate_json(json.dumps(data))
    diagnostic = resources(bundle, DiagnosticReport)
    assert [r.status for r in diagnostic] == ["final", "amended"]
    assert "needed (soon)" in (diagnostic[0].conclusion or "")
    assert len(resources(bundle, Communication)) == 1
    assert len(resources(bundle, Practitioner)) == 2
    assert len(resources(bundle, Organization)) == 2
    (encounter,) = resources(bundle, Encounter)
    assert encounter.class_fhir.code == "VR"
    # Every reference points inside the bundle.
    urls = {entry["fullUrl"] for entry in data["entry"]}
    text = json.dumps(data)
    for part in text.split('"reference": "')[1:]:
        assert part.split('"')[0] in urls


def test_models_match_migrations(database_url: str) -> None:
    migrate.check(database_url)  # raises when a model has no migration
