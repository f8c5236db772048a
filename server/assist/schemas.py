"""What the assist's API takes and answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from server.consults.models import Urgency


class StatusOut(BaseModel):
    enabled: bool


class SuggestIn(BaseModel):
    text: str = Field(max_length=8000)
    # The urgency the GP has chosen so far: the suggestion never goes below it.
    urgency: Urgency = Urgency.ROUTINE


class SpecialtyOut(BaseModel):
    id: int
    code: str
    name: str
    confidence: float
    words: list[str]


class ReasonOut(BaseModel):
    rule: str
    ktas: int
    reason: str
    evidence: list[str]


class UrgencyOut(BaseModel):
    suggested: Urgency
    raised: bool  # a red flag fired
    reasons: list[ReasonOut]


class SuggestOut(BaseModel):
    suggestion_id: str  # empty when nothing was shown (too little text yet)
    specialties: list[SpecialtyOut]
    urgency: UrgencyOut
    cold_start: bool  # learnt from the shipped example questions, not enough real consults
    real_consults: int
    needed: int


class SimilarOut(BaseModel):
    public_id: str
    question: str
    summary: str
    outcome: str
    similarity: float
    completed_at: datetime | None
