"""Call sessions (for the dashboards) and guest invitations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow


class CallSession(SQLModel, table=True):
    """One call of a consult: from the first join to the last leave."""

    id: int | None = Field(default=None, primary_key=True)
    consult_id: int = Field(foreign_key="consultrequest.id", index=True)
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    duration_seconds: int | None = None
    peak_participants: int = 0
    # Medians over the participants' reports (None: nobody reported).
    median_bitrate_kbps: float | None = None
    median_rtt_ms: float | None = None
    median_loss_pct: float | None = None


class CallParticipant(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    call_session_id: int = Field(foreign_key="callsession.id", index=True)
    peer_id: str = Field(max_length=64, index=True)
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    guest_name: str = Field(default="", max_length=80)
    kind: str = Field(default="user", sa_type=String(10))
    joined_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    left_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # The client's own quality summary (medians over its call), last report wins.
    bitrate_kbps: float | None = None
    rtt_ms: float | None = None
    loss_pct: float | None = None


class CallInvitation(SQLModel, table=True):
    """A single-use, expiring invitation for a guest (interpreter, family member)."""

    id: int | None = Field(default=None, primary_key=True)
    consult_id: int = Field(foreign_key="consultrequest.id", index=True)
    created_by_id: int = Field(foreign_key="user.id")
    # Only the hash is kept: a database leak does not open the call.
    token_hash: str = Field(max_length=64, unique=True)
    guest_name: str = Field(max_length=80)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
