"""Export: a FHIR R4 Bundle per consult, built and validated with `fhir.resources`.

fhir.resources 8 ships R5 as its default and R4B (4.3, a compatible subset of R4)
under fhir.resources.R4B; every resource used here is the same in R4 and R4B.
The patient appears only with the clinic's chart number (no name, no birth date,
no registration number); the age travels as a note on the ServiceRequest.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from sqlmodel import Session, col, select

from server.accounts.models import Organisation, Specialty, User
from server.clock import utcnow
from server.consults import reports
from server.consults.access import Viewing
from server.consults.models import (
    ConsultAttachment,
    ConsultRequest,
    ConsultStatus,
    GPDecision,
)
from server.consults.service import (
    attachments_of,
    audit_consult,
    decisions_of,
    media_type_of,
    messages_of,
    require_full_record,
)
from server.notes import service as notes
from server.scheduling.models import Appointment

S = ConsultStatus
NAMESPACE = uuid.UUID("6f1c1c52-6a35-4a4e-9b0e-5d0a7c1d2a10")
SYSTEM = "urn:dari"
SERVICE_REQUEST_STATUS = {
    S.DRAFT: "draft",
    S.COMPLETED: "completed",
    S.DECLINED: "revoked",
    S.CANCELLED: "revoked",
}
ENCOUNTER_STATUS = {
    S.IN_PROGRESS: "in-progress",
    S.REPORT_PENDING: "finished",
    S.COMPLETED: "finished",
    S.DECLINED: "cancelled",
    S.CANCELLED: "cancelled",
    S.NO_SHOW: "cancelled",
}
PRIORITY = {"routine": "routine", "soon": "urgent", "urgent": "asap"}
APPOINTMENT_STATUS = {
    "active": "booked",
    "cancelled": "cancelled",
    "completed": "fulfilled",
    "rescheduled": "cancelled",
}


def _urn(kind: str, key: object) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{kind}/{key}')}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ref(url: str, display: str | None = None) -> dict[str, Any]:
    return {"reference": url, **({"display": display} if display else {})}


def _appointments(session: Session, consult_id: int) -> list[Appointment]:
    """The consult's appointments (booked, moved, cancelled), oldest first."""
    return list(
        session.exec(
            select(Appointment)
            .where(Appointment.consult_request_id == consult_id)
            .order_by(col(Appointment.id))
        ).all()
    )


def build_bundle(session: Session, consult: ConsultRequest) -> dict[str, Any]:
    """The consult as a FHIR collection Bundle (a plain dict, validated by fhir.resources)."""
    entries: list[dict[str, Any]] = []

    def add(url: str, resource: dict[str, Any]) -> str:
        entries.append({"fullUrl": url, "resource": resource})
        return url

    def organisation(org_id: int) -> str:
        url = _urn("Organization", org_id)
        if any(entry["fullUrl"] == url for entry in entries):
            return url
        org = session.get(Organisation, org_id)
        return add(
            url,
            {
                "resourceType": "Organization",
                "identifier": [{"system": f"{SYSTEM}:organisation", "value": str(org_id)}],
                "name": org.name_ko if org else str(org_id),
                **({"alias": [org.name_en]} if org else {}),
            },
        )

    def practitioner(user_id: int) -> str:
        url = _urn("Practitioner", user_id)
        if any(entry["fullUrl"] == url for entry in entries):
            return url
        user = session.get(User, user_id)
        return add(
            url,
            {
                "resourceType": "Practitioner",
                "identifier": [{"system": f"{SYSTEM}:user", "value": str(user_id)}],
                **({"name": [{"text": user.name}]} if user else {}),
            },
        )

    clinic = organisation(consult.organisation_id)
    requester = practitioner(consult.requester_id)
    specialist = (
        practitioner(consult.assigned_specialist_id) if consult.assigned_specialist_id else None
    )
    if consult.assigned_organisation_id:
        organisation(consult.assigned_organisation_id)
    patient = add(
        _urn("Patient", consult.public_id),
        {
            "resourceType": "Patient",
            "identifier": [
                {
                    "use": "usual",
                    "type": {"text": "chart number"},
                    "system": f"{SYSTEM}:organisation:{consult.organisation_id}:chart",
                    "value": consult.patient_chart_number,
                }
            ],
            "gender": consult.patient_sex,
            "managingOrganization": _ref(clinic),
        },
    )
    specialty = session.get(Specialty, consult.specialty_id)
    notes = [f"Age: {consult.patient_age}"] + [
        f"{label}: {value}"
        for label, value in (
            ("History", consult.history),
            ("Medication", consult.medication),
            ("Vital signs", consult.vital_signs),
        )
        if value
    ]
    service_request = add(
        _urn("ServiceRequest", consult.public_id),
        {
            "resourceType": "ServiceRequest",
            "identifier": [{"system": f"{SYSTEM}:consult", "value": consult.public_id}],
            "status": SERVICE_REQUEST_STATUS.get(consult.status, "active"),
            "intent": "order",
            "priority": PRIORITY.get(consult.urgency, "routine"),
            "category": [{"text": f"remote consultation ({consult.mode})"}],
            "code": {
                "coding": [
                    {
                        "system": f"{SYSTEM}:specialty",
                        "code": specialty.code if specialty else "none",
                    }
                ],
                "text": specialty.name_en if specialty else "consultation",
            },
            "subject": _ref(patient),
            "requester": _ref(requester),
            **({"performer": [_ref(specialist)]} if specialist else {}),
            **({"authoredOn": _iso(consult.requested_at)} if consult.requested_at else {}),
            "reasonCode": [{"text": consult.clinical_question}],
            "note": [{"text": text} for text in notes],
        },
    )
    for appointment in _appointments(session, consult.id or 0):
        add(
            _urn("Appointment", appointment.id),
            {
                "resourceType": "Appointment",
                "status": APPOINTMENT_STATUS.get(str(appointment.status), "booked"),
                "start": _iso(appointment.starts_at),
                "end": _iso(appointment.ends_at),
                "basedOn": [_ref(service_request)],
                "participant": [
                    {"actor": _ref(patient), "status": "accepted"},
                    {"actor": _ref(practitioner(appointment.specialist_id)), "status": "accepted"},
                ],
            },
        )
    participants = [{"individual": _ref(requester)}]
    if specialist:
        participants.append({"individual": _ref(specialist)})
    period = {"start": _iso(consult.requested_at or consult.created_at)}
    if consult.completed_at:
        period["end"] = _iso(consult.completed_at)
    encounter = add(
        _urn("Encounter", consult.public_id),
        {
            "resourceType": "Encounter",
            "status": ENCOUNTER_STATUS.get(consult.status, "planned"),
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "VR",
                "display": "virtual",
            },
            "subject": _ref(patient),
            "basedOn": [_ref(service_request)],
            "participant": participants,
            "period": period,
            "serviceProvider": _ref(clinic),
        },
    )
    for message in messages_of(session, consult):
        sender = practitioner(message.author_id)
        recipient = specialist if message.author_id == consult.requester_id else requester
        add(
            _urn("Communication", message.id),
            {
                "resourceType": "Communication",
                "status": "completed",
                "basedOn": [_ref(service_request)],
                "subject": _ref(patient),
                "encounter": _ref(encounter),
                "sent": _iso(message.created_at),
                "sender": _ref(sender),
                **({"recipient": [_ref(recipient)]} if recipient else {}),
                **(
                    {"inResponseTo": [_ref(_urn("Communication", message.reply_to_id))]}
                    if message.reply_to_id
                    else {}
                ),
                "payload": [{"contentString": message.body}],
            },
        )
    _add_reports(session, consult, add, practitioner, service_request, patient, encounter)
    _add_decisions(
        decisions_of(session, consult), add, practitioner, service_request, patient, encounter
    )
    _add_attachments(attachments_of(session, consult), consult, add, patient, encounter)
    _add_shared_note(session, consult, add, patient, encounter)
    bundle = {
        "resourceType": "Bundle",
        "identifier": {"system": f"{SYSTEM}:consult-export", "value": consult.public_id},
        "type": "collection",
        "timestamp": utcnow().replace(microsecond=0).isoformat(),
        "entry": entries,
    }
    # Validation: fhir.resources raises if any resource does not conform.
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)


def _add_reports(
    session: Session,
    consult: ConsultRequest,
    add: Any,
    practitioner: Any,
    service_request: str,
    patient: str,
    encounter: str,
) -> None:
    signed = [r for r in reports.versions(session, consult.id or 0) if r.signed_at is not None]
    for report in signed:
        conclusion = "\n\n".join(
            f"{label}: {value}"
            for label, value in (
                ("Findings", report.findings),
                ("Assessment", report.assessment),
                ("Recommendation", report.recommendation),
                ("Follow-up", report.follow_up),
                (
                    "In-person referral",
                    f"needed ({report.referral_urgency})"
                    if report.referral_needed
                    else "not needed",
                ),
                ("Amendment reason", report.amendment_reason),
            )
            if value
        )
        add(
            _urn("DiagnosticReport", report.id),
            {
                "resourceType": "DiagnosticReport",
                "identifier": [
                    {
                        "system": f"{SYSTEM}:report",
                        "value": f"{consult.public_id}/v{report.version}",
                    },
                    {"system": f"{SYSTEM}:report-sha256", "value": report.content_hash},
                ],
                "basedOn": [_ref(service_request)],
                # Signed versions stay final (valid when signed); amendments are "amended".
                "status": "amended" if report.amends_id else "final",
                "code": {"text": "Specialist remote consultation report"},
                "subject": _ref(patient),
                "encounter": _ref(encounter),
                "issued": _iso(report.signed_at),
                "performer": [_ref(practitioner(report.author_id))],
                "conclusion": conclusion,
            },
        )


def _add_decisions(
    decisions: list[GPDecision],
    add: Any,
    practitioner: Any,
    service_request: str,
    patient: str,
    encounter: str,
) -> None:
    for decision in decisions:
        text = f"GP decision: {decision.action}" + (f"\n{decision.note}" if decision.note else "")
        add(
            _urn("GPDecision", decision.id),
            {
                "resourceType": "Communication",
                "status": "completed",
                "category": [{"text": "GP decision and action after the advice"}],
                "basedOn": [_ref(service_request)],
                "subject": _ref(patient),
                "encounter": _ref(encounter),
                "sent": _iso(decision.signed_at),
                "sender": _ref(practitioner(decision.author_id)),
                "identifier": [
                    {"system": f"{SYSTEM}:decision-sha256", "value": decision.content_hash}
                ],
                "payload": [{"contentString": text}],
            },
        )


def _add_attachments(
    attachments: list[ConsultAttachment],
    consult: ConsultRequest,
    add: Any,
    patient: str,
    encounter: str,
) -> None:
    base = f"/api/consults/{consult.public_id}/attachments"
    for attachment in attachments:
        add(
            _urn("DocumentReference", attachment.public_id),
            {
                "resourceType": "DocumentReference",
                "status": "current",
                "subject": _ref(patient),
                "date": _iso(attachment.created_at),
                "context": {"encounter": [_ref(encounter)]},
                "content": [
                    {
                        "attachment": {
                            "contentType": media_type_of(attachment),
                            "size": attachment.size,
                            "title": attachment.filename,
                            "url": f"{base}/{attachment.public_id}",
                            "creation": _iso(attachment.created_at),
                        }
                    }
                ],
            },
        )


def _add_shared_note(
    session: Session, consult: ConsultRequest, add: Any, patient: str, encounter: str
) -> None:
    """The shared note as it stands (frozen when the report was signed), inline as text."""
    text = notes.final_text(session, consult)
    if not text:
        return
    add(
        _urn("SharedNote", consult.public_id),
        {
            "resourceType": "DocumentReference",
            "identifier": [{"system": f"{SYSTEM}:shared-note", "value": consult.public_id}],
            "status": "current",
            # final once the report is signed (the note is then read-only)
            "docStatus": "final" if consult.report_signed_at else "preliminary",
            "type": {"text": "Shared consultation notes"},
            "description": "Notes written together by the GP and the specialist",
            "subject": _ref(patient),
            **({"date": _iso(consult.report_signed_at)} if consult.report_signed_at else {}),
            "context": {"encounter": [_ref(encounter)]},
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "title": "Shared notes",
                        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                    }
                }
            ],
        },
    )


def export_bundle(session: Session, viewing: Viewing) -> dict[str, Any]:
    """The bundle for someone who may see the full record (audited)."""
    require_full_record(viewing)
    bundle = build_bundle(session, viewing.consult)
    audit_consult(session, "consult.export", viewing, format="fhir-r4b")
    return bundle
