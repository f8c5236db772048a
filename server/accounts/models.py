"""Who works where: regions, organisations, specialties, users and their sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow
from server.columns import StrEnumType


class OrgKind(StrEnum):
    CLINIC = "clinic"
    HEALTH_CENTRE = "health_centre"
    HOSPITAL = "hospital"
    # A provincial or national health authority: its users see aggregates, never records.
    AUTHORITY = "authority"


class Role(StrEnum):
    GP = "gp"
    SPECIALIST = "specialist"
    ADMIN = "admin"
    # Read-only: the equity view's aggregates of its own region, no patient record (16 chars
    # at most: the column is VARCHAR(16)).
    REGION_AUTHORITY = "region_authority"


class Region(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name_ko: str = Field(max_length=100)
    name_en: str = Field(max_length=100)


class Organisation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name_ko: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    kind: OrgKind = Field(sa_type=StrEnumType(OrgKind, 20))
    region_id: int = Field(foreign_key="region.id", index=True)
    # A regional hub hospital: GPs of the same region are routed to it first.
    is_hub: bool = False
    timezone: str = Field(default="Asia/Seoul", max_length=64)


class Specialty(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=40, unique=True)
    name_ko: str = Field(max_length=100)
    name_en: str = Field(max_length=100)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Stored lower-cased so that login and uniqueness ignore case.
    email: str = Field(max_length=254, unique=True)
    name: str = Field(max_length=100)
    password_hash: str = Field(max_length=200)
    role: Role = Field(sa_type=StrEnumType(Role, 16))
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    specialty_id: int | None = Field(default=None, foreign_key="specialty.id", index=True)
    locale: str = Field(default="ko", max_length=8)
    active: bool = True
    # Two-factor sign-in (TOTP, RFC 6238): the base32 secret, set at enrolment and in
    # force once confirmed with a first code (totp_enabled_at).
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_enabled_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    # The time step (RFC 6238 T) of the last code accepted: a code is good once
    # (RFC 6238 §5.2), so one seen over a shoulder or replayed opens nothing.
    totp_last_step: int | None = Field(default=None, sa_type=BigInteger)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )


class LoginSession(SQLModel, table=True):
    """A server-side session: the cookie holds a random token, we keep only its hash."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)
    # "" for a full session; "otp" while the password was right but the one-time code
    # is still to come; "enrol" while a specialist or administrator must first set up
    # two-factor sign-in. A pending session opens nothing but that step.
    pending: str = Field(default="", max_length=8)


class LoginAttempt(SQLModel, table=True):
    """Failed and successful logins, for throttling by account and by address."""

    __table_args__ = (
        Index("ix_loginattempt_email_at", "email", "at"),
        Index("ix_loginattempt_ip_at", "ip", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254)
    ip: str = Field(max_length=64)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    success: bool = False


class RecoveryCode(SQLModel, table=True):
    """A one-time code that stands in for the authenticator app (kept by hash only)."""

    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    code_hash: str = Field(max_length=64)
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
