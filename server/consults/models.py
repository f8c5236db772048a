"""The consult request: the record a clinic keeps, shared by scheduling and signaling."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow
from server.columns import StrEnumType


class ConsultStatus(StrEnum):
    DRAFT = "draft"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    REPORT_PENDING = "report_pending"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    ESCALATED = "escalated"


class Urgency(StrEnum):
    ROUTINE = "routine"
    SOON = "soon"
    URGENT = "urgent"


class ConsultMode(StrEnum):
    VIDEO = "video"
    ASYNC = "async"


class Outcome(StrEnum):
    """How the GP closed the case (the figure the dashboards show)."""

    RESOLVED_WITHOUT_REFERRAL = "resolved_without_referral"
    REFERRED = "referred"
    OTHER = "other"


class GPAction(StrEnum):
    """What the GP did for the patient after the advice (their own accountable part)."""

    TREATED_LOCALLY = "treated_locally"
    REFERRED = "referred"
    ADMITTED = "admitted"
    OTHER = "other"


class ReferralUrgency(StrEnum):
    NONE = "none"
    ROUTINE = "routine"
    SOON = "soon"
    URGENT = "urgent"


class AttachmentKind(StrEnum):
    JPEG = "jpeg"
    PNG = "png"
    PDF = "pdf"
    DICOM = "dicom"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


def new_public_id() -> str:
    """Unguessable: it appears in URLs and names the call's room."""
    return secrets.token_urlsafe(16)


class ConsultRequest(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(default_factory=new_public_id, max_length=32, unique=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    requester_id: int = Field(foreign_key="user.id", index=True)
    specialty_id: int = Field(foreign_key="specialty.id", index=True)
    assigned_specialist_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    status: ConsultStatus = Field(
        default=ConsultStatus.DRAFT, sa_type=StrEnumType(ConsultStatus, 20), index=True
    )
    urgency: Urgency = Field(default=Urgency.ROUTINE, sa_type=StrEnumType(Urgency, 10))
    mode: ConsultMode = Field(default=ConsultMode.VIDEO, sa_type=StrEnumType(ConsultMode, 10))
    # The patient is known only by the clinic's own chart number, age and sex.
    patient_chart_number: str = Field(max_length=40)
    patient_age: int
    patient_sex: Sex = Field(sa_type=StrEnumType(Sex, 10))
    clinical_question: str = Field(sa_column=Column(Text, nullable=False))
    history: str = Field(default="", sa_column=Column(Text, nullable=False))
    medication: str = Field(default="", sa_column=Column(Text, nullable=False))
    vital_signs: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    requested_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    first_response_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    report_signed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Set when a specialist takes the consult: that hospital's administrators may see it.
    assigned_organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    escalated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Filled when the GP closes the case.
    outcome: Outcome | None = Field(default=None, sa_type=StrEnumType(Outcome, 32))
    usefulness: int | None = None  # 1 (not useful) … 5 (very useful)
    outcome_note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))


class ConsultEvent(SQLModel, table=True):
    """The timeline: every transition and mode change, with who, when and why."""

    id: int | None = Field(default=None, primary_key=True)
    consult_id: int = Field(foreign_key="consultrequest.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    actor_id: int | None = Field(default=None, foreign_key="user.id")  # None: the system
    kind: str = Field(default="transition", max_length=20)  # transition | mode
    from_value: str = Field(max_length=20)
    to_value: str = Field(max_length=20)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))


class ConsultMessage(SQLModel, table=True):
    """The written (store-and-forward) exchange; `reply_to_id` threads it."""

    id: int | None = Field(default=None, primary_key=True)
    consult_id: int = Field(foreign_key="consultrequest.id", index=True)
    author_id: int = Field(foreign_key="user.id")
    reply_to_id: int | None = Field(default=None, foreign_key="consultmessage.id")
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class ConsultAttachment(SQLModel, table=True):
    """A file as uploaded; the bytes live content-addressed on disk under `sha256`."""

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(default_factory=new_public_id, max_length=32, unique=True)
    consult_id: int = Field(foreign_key="consultrequest.id", index=True)
    uploader_id: int = Field(foreign_key="user.id")
    kind: AttachmentKind = Field(sa_type=StrEnumType(AttachmentKind, 10))
    sha256: str = Field(max_length=64, index=True)
    size: int
    filename: str = Field(max_length=200)
    has_thumbnail: bool = False
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class ConsultReport(SQLModel, table=True):
    """One version of the specialist's report; signed versions never change (DB trigger)."""

    __table_args__ = (UniqueConstraint("consult_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    consult_id: int = Field(foreign_key="consultrequest.id", index=True)
    version: int
    author_id: int = Field(foreign_key="user.id")
    amends_id: int | None = Field(default=None, foreign_key="consultreport.id")
    amendment_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    findings: str = Field(default="", sa_column=Column(Text, nullable=False))
    assessment: str = Field(default="", sa_column=Column(Text, nullable=False))
    recommendation: str = Field(default="", sa_column=Column(Text, nullable=False))
    follow_up: str = Field(default="", sa_column=Column(Text, nullable=False))
    referral_needed: bool = False
    referral_urgency: ReferralUrgency = Field(
        default=ReferralUrgency.NONE, sa_type=StrEnumType(ReferralUrgency, 10)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    signed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # SHA-256 of the signed content and signer: printed on the report, checkable later.
    content_hash: str = Field(default="", max_length=64)


class GPDecision(SQLModel, table=True):
    """The GP's own decision and action after the advice, signed by the GP (art. 34)."""

    id: int | None = Field(default=None, primary_key=True)
    consult_id: int = Field(foreign_key="consultrequest.id", index=True)
    author_id: int = Field(foreign_key="user.id")
    action: GPAction = Field(sa_type=StrEnumType(GPAction, 20))
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    signed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    content_hash: str = Field(max_length=64)
