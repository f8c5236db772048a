"""Request bodies of the calls API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class InvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guest_name: str = Field(min_length=1, max_length=80)
    minutes: int | None = Field(default=None, ge=1, le=24 * 60)


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=8, max_length=200)
