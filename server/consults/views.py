"""The whole record of one consult as a viewer may see it (API and pages share this)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from server.clock import utcnow
from server.consults import clocks, lifecycle, reports, service
from server.consults.access import Viewing, sees_full_record
from server.consults.models import (
    ConsultAttachment,
    ConsultEvent,
    ConsultMessage,
    ConsultReport,
    ConsultRequest,
    GPDecision,
)
from server.consults.schemas import (
    AttachmentOut,
    ConsultDetailOut,
    ConsultSummaryOut,
    DecisionOut,
    EventOut,
    MessageOut,
    ReportOut,
)
from server.settings import Settings


@dataclass
class ConsultRecord:
    viewing: Viewing
    events: list[ConsultEvent]
    attachments: list[ConsultAttachment]
    full: bool
    messages: list[ConsultMessage] = field(default_factory=list)
    reports: list[ConsultReport] = field(default_factory=list)
    decisions: list[GPDecision] = field(default_factory=list)
    overdue: bool = False
    allowed: list[str] = field(default_factory=list)


def read_record(session: Session, viewing: Viewing, settings: Settings) -> ConsultRecord:
    """Everything the viewer may see; the triage view stops at the request (audited)."""
    consult = viewing.consult
    full = sees_full_record(viewing.access)
    record = ConsultRecord(
        viewing=viewing,
        events=service.events_of(session, consult),
        attachments=service.attachments_of(session, consult),
        full=full,
        overdue=clocks.is_overdue(consult, settings, utcnow()),
        allowed=lifecycle.allowed_for(viewing.user, consult),
    )
    if full:
        record.messages = service.messages_of(session, consult)
        record.reports = reports.read_versions(session, viewing)
        record.decisions = service.decisions_of(session, consult)
    service.audit_consult(session, "consult.read", viewing, full=full)
    return record


def attachment_out(viewing: Viewing, attachment: ConsultAttachment, full: bool) -> AttachmentOut:
    url = f"/api/consults/{viewing.consult.public_id}/attachments/{attachment.public_id}"
    return AttachmentOut(
        id=attachment.public_id,
        kind=attachment.kind,
        size=attachment.size,
        filename=attachment.filename,
        has_thumbnail=attachment.has_thumbnail,
        created_at=attachment.created_at,
        url=url if full else None,
    )


def report_out(report: ConsultReport) -> ReportOut:
    return ReportOut.model_validate(report, from_attributes=True)


def detail_out(record: ConsultRecord, settings: Settings) -> ConsultDetailOut:
    consult = record.viewing.consult
    return ConsultDetailOut(
        id=consult.public_id,
        **consult.model_dump(
            include={
                "status",
                "urgency",
                "mode",
                "organisation_id",
                "requester_id",
                "specialty_id",
                "assigned_specialist_id",
                "patient_chart_number",
                "patient_age",
                "patient_sex",
                "clinical_question",
                "history",
                "medication",
                "vital_signs",
                "created_at",
                "requested_at",
                "first_response_at",
                "report_signed_at",
                "completed_at",
                "outcome",
                "usefulness",
                "outcome_note",
            }
        ),
        due_at=clocks.due_at(consult, settings),
        overdue=record.overdue,
        access=record.viewing.access.value,
        allowed_transitions=record.allowed,
        events=[EventOut.model_validate(e, from_attributes=True) for e in record.events],
        messages=(
            [MessageOut.model_validate(m, from_attributes=True) for m in record.messages]
            if record.full
            else None
        ),
        attachments=[attachment_out(record.viewing, a, record.full) for a in record.attachments],
        reports=[report_out(r) for r in record.reports] if record.full else None,
        decisions=(
            [DecisionOut.model_validate(d, from_attributes=True) for d in record.decisions]
            if record.full
            else None
        ),
    )


def summary_out(consult: ConsultRequest, settings: Settings) -> ConsultSummaryOut:
    return ConsultSummaryOut(
        id=consult.public_id,
        status=consult.status,
        urgency=consult.urgency,
        mode=consult.mode,
        specialty_id=consult.specialty_id,
        patient_chart_number=consult.patient_chart_number,
        requested_at=consult.requested_at,
        overdue=clocks.is_overdue(consult, settings, utcnow()),
    )
