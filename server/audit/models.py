"""The audit log tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime


class AuditEvent(SQLModel, table=True):
    """One event; `hash` covers its fields and the previous event's hash."""

    id: int | None = Field(default=None, primary_key=True)
    # Contiguous 1, 2, 3… (ids from sequences may skip), so a deleted row leaves a gap.
    seq: int = Field(unique=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    actor_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    action: str = Field(max_length=64, index=True)
    object_type: str = Field(default="", max_length=40)
    object_id: str = Field(default="", max_length=64)
    organisation_id: int | None = Field(default=None, index=True)
    ip: str = Field(default="", max_length=64)
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The single row naming the last event: removing the newest events shows up here."""

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="", max_length=64)
