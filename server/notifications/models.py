"""The notification outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow


class Notification(SQLModel, table=True):
    """Written in the same transaction as the change it announces: nothing is lost."""

    __table_args__ = (Index("ix_notification_user_id_id", "user_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id")
    kind: str = Field(max_length=40)
    # JSON; ids and short labels only, never clinical free text.
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    read_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
