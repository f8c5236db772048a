"""The assist's records: each organisation's consent, and every suggestion shown with the
choice the GP then made (so that the assist can be judged)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from server.clock import UTCDateTime, utcnow


def new_suggestion_id() -> str:
    return secrets.token_urlsafe(12)


class AssistConsent(SQLModel, table=True):
    """Whether an organisation has switched the assist on (off unless an administrator
    does). Only consented organisations get suggestions, and only their closed consults
    train the model or appear as similar cases."""

    organisation_id: int = Field(foreign_key="organisation.id", primary_key=True)
    enabled: bool = False
    changed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    changed_by_id: int | None = Field(default=None, foreign_key="user.id")


class AssistSuggestion(SQLModel, table=True):
    """One suggestion as shown to a GP (never the question's text), and what they chose."""

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(default_factory=new_suggestion_id, max_length=24, unique=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False)
    )
    model_version: str = Field(default="", max_length=40)
    model_source: str = Field(default="", max_length=20)  # seed | deployment
    # The top three as shown: "code:confidence" separated by spaces (most likely first).
    specialties: str = Field(default="", max_length=200)
    urgent: bool = False  # the red-flag rules suggested "urgent"
    rules: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    # Filled when the GP sends or saves the request this suggestion was shown for.
    consult_id: int | None = Field(default=None, foreign_key="consultrequest.id", index=True)
    chosen_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    chosen_specialty_id: int | None = Field(default=None, foreign_key="specialty.id")
    chosen_urgency: str = Field(default="", max_length=10)
    took_specialty: bool | None = None  # the first suggestion was the specialty chosen
    in_top_three: bool | None = None
    took_urgency: bool | None = None  # suggested "urgent" and the GP chose urgent
