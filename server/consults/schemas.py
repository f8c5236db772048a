"""What the consults API accepts and returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from server.consults.models import (
    ConsultMode,
    GPAction,
    Outcome,
    ReferralUrgency,
    Sex,
    Urgency,
)
from server.validation import BodyId


class ConsultIn(BaseModel):
    specialty_id: BodyId
    urgency: Urgency = Urgency.ROUTINE
    mode: ConsultMode = ConsultMode.VIDEO
    patient_chart_number: str = Field(min_length=1, max_length=40)
    patient_age: int = Field(ge=0, le=130)
    patient_sex: Sex
    clinical_question: str = Field(min_length=1, max_length=10_000)
    history: str = Field(default="", max_length=20_000)
    medication: str = Field(default="", max_length=10_000)
    vital_signs: str = Field(default="", max_length=2_000)
    submit: bool = True  # False keeps it a draft


class DraftPatch(BaseModel):
    urgency: Urgency | None = None
    mode: ConsultMode | None = None
    patient_chart_number: str | None = Field(default=None, min_length=1, max_length=40)
    patient_age: int | None = Field(default=None, ge=0, le=130)
    patient_sex: Sex | None = None
    clinical_question: str | None = Field(default=None, min_length=1, max_length=10_000)
    history: str | None = Field(default=None, max_length=20_000)
    medication: str | None = Field(default=None, max_length=10_000)
    vital_signs: str | None = Field(default=None, max_length=2_000)


class TransitionIn(BaseModel):
    to: str = Field(max_length=20)
    reason: str = Field(default="", max_length=2000)


class ModeIn(BaseModel):
    mode: ConsultMode
    reason: str = Field(default="", max_length=2000)


class MessageIn(BaseModel):
    body: str = Field(min_length=1, max_length=20_000)
    reply_to_id: BodyId | None = None


class ReportIn(BaseModel):
    findings: str = Field(default="", max_length=20_000)
    assessment: str = Field(default="", max_length=20_000)
    recommendation: str = Field(default="", max_length=20_000)
    follow_up: str = Field(default="", max_length=10_000)
    referral_needed: bool = False
    referral_urgency: ReferralUrgency = ReferralUrgency.NONE


class AmendIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class DecisionIn(BaseModel):
    action: GPAction
    note: str = Field(default="", max_length=10_000)


class CloseIn(BaseModel):
    outcome: Outcome
    usefulness: int | None = Field(default=None, ge=1, le=5)
    note: str = Field(default="", max_length=10_000)


class EventOut(BaseModel):
    at: datetime
    actor_id: int | None
    kind: str
    from_value: str
    to_value: str
    reason: str


class MessageOut(BaseModel):
    id: int
    author_id: int
    reply_to_id: int | None
    body: str
    created_at: datetime


class AttachmentOut(BaseModel):
    id: str
    kind: str
    size: int
    filename: str
    has_thumbnail: bool
    created_at: datetime
    url: str | None  # None for the triage view


class ReportOut(BaseModel):
    id: int
    version: int
    author_id: int
    amends_id: int | None
    amendment_reason: str
    findings: str
    assessment: str
    recommendation: str
    follow_up: str
    referral_needed: bool
    referral_urgency: str
    updated_at: datetime
    signed_at: datetime | None
    content_hash: str


class DecisionOut(BaseModel):
    id: int
    author_id: int
    action: str
    note: str
    signed_at: datetime
    content_hash: str


class ConsultOut(BaseModel):
    id: str
    status: str
    urgency: str
    mode: str
    organisation_id: int
    requester_id: int
    specialty_id: int
    assigned_specialist_id: int | None
    patient_chart_number: str
    patient_age: int
    patient_sex: str
    clinical_question: str
    history: str
    medication: str
    vital_signs: str
    created_at: datetime
    requested_at: datetime | None
    first_response_at: datetime | None
    report_signed_at: datetime | None
    completed_at: datetime | None
    due_at: datetime | None
    overdue: bool
    outcome: str | None
    usefulness: int | None
    outcome_note: str
    access: str
    allowed_transitions: list[str]


class ConsultDetailOut(ConsultOut):
    events: list[EventOut]
    messages: list[MessageOut] | None
    attachments: list[AttachmentOut]
    reports: list[ReportOut] | None
    decisions: list[DecisionOut] | None


class ConsultSummaryOut(BaseModel):
    id: str
    status: str
    urgency: str
    mode: str
    specialty_id: int
    patient_chart_number: str
    requested_at: datetime | None
    overdue: bool
