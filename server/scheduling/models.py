"""Rosters (weekly rules and exceptions), appointments, urgent rings, calendar feeds."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import Column, Date, Index, Time, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow
from server.columns import StrEnumType


class RuleKind(StrEnum):
    CONSULT = "consult"  # bookable consult hours
    ONCALL = "oncall"  # on call for urgent consults


class ExceptionKind(StrEnum):
    LEAVE = "leave"  # not available (whole day or some hours)
    EXTRA = "extra"  # one-off extra consult hours


class AppointmentStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"  # replaced by another appointment
    COMPLETED = "completed"


class RingLevel(StrEnum):
    REGIONAL = "regional"
    NATIONAL = "national"
    DIRECT = "direct"  # an administrator rang this specialist by name


class UrgentStatus(StrEnum):
    RINGING = "ringing"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"


class RosterRule(SQLModel, table=True):
    """A weekly recurring block, in the specialist's organisation's local time."""

    __table_args__ = (Index("ix_rosterrule_specialist_kind", "specialist_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    specialist_id: int = Field(foreign_key="user.id")
    weekday: int  # 0 = Monday ... 6 = Sunday
    # Wall-clock times in the organisation's zone, so 09:00 stays 09:00 across DST.
    start_time: time = Field(sa_column=Column(Time, nullable=False))
    end_time: time = Field(sa_column=Column(Time, nullable=False))
    slot_minutes: int = 20
    kind: RuleKind = Field(default=RuleKind.CONSULT, sa_type=StrEnumType(RuleKind, 10))
    valid_from: date = Field(sa_column=Column(Date, nullable=False))
    valid_to: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class RosterException(SQLModel, table=True):
    """Leave or extra hours for one occasion; entered locally, stored as a UTC interval."""

    __table_args__ = (Index("ix_rosterexception_specialist_starts", "specialist_id", "starts_at"),)

    id: int | None = Field(default=None, primary_key=True)
    specialist_id: int = Field(foreign_key="user.id")
    kind: ExceptionKind = Field(sa_type=StrEnumType(ExceptionKind, 10))
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    slot_minutes: int = 20
    note: str = Field(default="", max_length=200)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class Appointment(SQLModel, table=True):
    """A booked slot. The partial unique indexes are THE double-booking guarantee."""

    __table_args__ = (
        # One specialist, one active appointment per slot start: enforced by the database
        # (SQLite and PostgreSQL both support partial unique indexes), so a lost race
        # fails on insert even if two requests passed the Python check together.
        Index(
            "uq_appointment_specialist_start_active",
            "specialist_id",
            "starts_at",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        # A consult has at most one active appointment.
        Index(
            "uq_appointment_consult_active",
            "consult_request_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_appointment_specialist_starts", "specialist_id", "starts_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    consult_request_id: int = Field(foreign_key="consultrequest.id")
    specialist_id: int = Field(foreign_key="user.id")
    starts_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    status: AppointmentStatus = Field(
        default=AppointmentStatus.ACTIVE, sa_type=StrEnumType(AppointmentStatus, 12)
    )
    booked_by_id: int = Field(foreign_key="user.id")
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # Why it was cancelled or moved, and by whom (the other side is told).
    reason: str = Field(default="", max_length=500)
    ended_by_id: int | None = Field(default=None, foreign_key="user.id")
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    # The calendar event this appointment is: a rescheduled appointment keeps the UID of
    # the one it replaces and raises SEQUENCE (RFC 5545), so calendars move the event
    # instead of showing two. Empty: the appointment's own id names it.
    calendar_uid: str = Field(default="", max_length=80)
    sequence: int = Field(default=0)


class UrgentRequest(SQLModel, table=True):
    """An urgent consult being rung out to on-call specialists; the first accept wins."""

    id: int | None = Field(default=None, primary_key=True)
    consult_request_id: int = Field(foreign_key="consultrequest.id", unique=True)
    specialty_id: int = Field(foreign_key="specialty.id")
    region_id: int = Field(foreign_key="region.id")
    level: RingLevel = Field(default=RingLevel.REGIONAL, sa_type=StrEnumType(RingLevel, 10))
    status: UrgentStatus = Field(
        default=UrgentStatus.RINGING, sa_type=StrEnumType(UrgentStatus, 10), index=True
    )
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    level_started_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    # Set once, by a conditional UPDATE ... WHERE accepted_by_id IS NULL (see service).
    accepted_by_id: int | None = Field(default=None, foreign_key="user.id")
    accepted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class UrgentRing(SQLModel, table=True):
    """One specialist rung for one urgent request, at one level."""

    __table_args__ = (UniqueConstraint("urgent_request_id", "specialist_id"),)

    id: int | None = Field(default=None, primary_key=True)
    urgent_request_id: int = Field(foreign_key="urgentrequest.id", index=True)
    specialist_id: int = Field(foreign_key="user.id", index=True)
    level: RingLevel = Field(sa_type=StrEnumType(RingLevel, 10))
    rung_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class CalendarFeed(SQLModel, table=True):
    """A specialist's secret .ics URL; only a hash of the secret is kept."""

    id: int | None = Field(default=None, primary_key=True)
    specialist_id: int = Field(foreign_key="user.id", unique=True)
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
