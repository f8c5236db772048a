"""What the scheduling API accepts and returns."""

from __future__ import annotations

from datetime import datetime, time

from pydantic import BaseModel, Field

from server.scheduling.models import ExceptionKind, RuleKind
from server.validation import BodyId, EdgeAwareDateTime, EdgeDate


class RuleIn(BaseModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday")
    start_time: time
    end_time: time = Field(description="local time; 00:00 means midnight at the end of the day")
    slot_minutes: int = Field(default=20, ge=5, le=240)
    kind: RuleKind = RuleKind.CONSULT
    valid_from: EdgeDate
    valid_to: EdgeDate | None = None


class RuleOut(RuleIn):
    id: int
    specialist_id: int


class ExceptionIn(BaseModel):
    kind: ExceptionKind
    date_from: EdgeDate
    date_to: EdgeDate | None = Field(default=None, description="last day of a whole-day leave")
    start_time: time | None = Field(default=None, description="omit for whole days")
    end_time: time | None = None
    slot_minutes: int = Field(default=20, ge=5, le=240)
    note: str = Field(default="", max_length=200)


class ExceptionOut(BaseModel):
    id: int
    specialist_id: int
    kind: str
    starts_at: datetime
    ends_at: datetime
    slot_minutes: int
    note: str


class SlotOut(BaseModel):
    specialist_id: int
    specialist_name: str
    organisation_id: int
    organisation_name: str
    region_id: int
    starts_at: datetime
    ends_at: datetime
    tier: int
    reason: str


class BookIn(BaseModel):
    consult_id: str = Field(min_length=1, max_length=32, description="the consult's public id")
    specialist_id: BodyId
    starts_at: EdgeAwareDateTime


class RescheduleIn(BaseModel):
    starts_at: EdgeAwareDateTime
    specialist_id: BodyId | None = None
    reason: str = Field(min_length=3, max_length=500)


class CancelIn(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


class AppointmentOut(BaseModel):
    id: int
    consult_id: str
    specialist_id: int
    starts_at: datetime
    ends_at: datetime
    status: str
    reason: str


class UrgentIn(BaseModel):
    consult_id: str = Field(min_length=1, max_length=32)


class UrgentOut(BaseModel):
    id: int
    consult_id: str
    level: str
    status: str
    rung: list[int]
    accepted_by_id: int | None


class RingOut(BaseModel):
    """One urgent consult as the ring shows it (triage only)."""

    urgent_id: int
    consult_id: str
    urgency: str
    patient_age: int
    patient_sex: str
    question: str
    level: str
    started_at: datetime
    taken_by_id: int | None
    taken_by_name: str | None
    taken_at: datetime | None


class RingsOut(BaseModel):
    """The caller's ring state (GET /api/urgent/rings): the same as the home page's panel."""

    ringing: list[RingOut]
    taken: list[RingOut]
    mine: list[RingOut]
    alerts: list[RingOut]
    pool_count: int | None


class OnCallOut(BaseModel):
    specialist_id: int
    specialist_name: str
    organisation_id: int
    organisation_name: str
    regional: bool


class FeedOut(BaseModel):
    url: str
