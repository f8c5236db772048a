"""The consult request: the record a clinic keeps, shared by scheduling and signaling."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, String, Text
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow


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
    status: str = Field(default=ConsultStatus.DRAFT, sa_type=String(20), index=True)
    urgency: str = Field(default=Urgency.ROUTINE, sa_type=String(10))
    mode: str = Field(default=ConsultMode.VIDEO, sa_type=String(10))
    # The patient is known only by the clinic's own chart number, age and sex.
    patient_chart_number: str = Field(max_length=40)
    patient_age: int
    patient_sex: str = Field(sa_type=String(10))
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
