"""Assist API under /api/assist: thin handlers over service."""

from __future__ import annotations

from fastapi import APIRouter, Request

from server.accounts.deps import CurrentUser, SettingsDep, client_ip
from server.accounts.models import Role
from server.assist import jobs, service
from server.assist.schemas import (
    ReasonOut,
    SimilarOut,
    SpecialtyOut,
    StatusOut,
    SuggestIn,
    SuggestOut,
    UrgencyOut,
)
from server.consults.deps import ConsultForAssigned
from server.db import SessionDep
from web.render import request_locale, viewer_of

router = APIRouter(prefix="/api/assist", tags=["assist"])


def suggestion_out(suggestion: service.Suggestion, locale: str) -> SuggestOut:
    urgency = suggestion.urgency
    return SuggestOut(
        suggestion_id=suggestion.public_id,
        specialties=[
            SpecialtyOut(
                id=o.specialty.id or 0,
                code=o.specialty.code,
                name=o.specialty.name_ko if locale == "ko" else o.specialty.name_en,
                confidence=round(o.confidence, 3),
                words=list(o.words),
            )
            for o in suggestion.specialties
        ],
        urgency=UrgencyOut(
            suggested=urgency.urgency,
            raised=urgency.raised,
            reasons=[
                ReasonOut(
                    rule=f.rule.id,
                    ktas=f.rule.ktas,
                    reason=f.rule.reason(locale),
                    evidence=list(f.evidence),
                )
                for f in urgency.flags
            ],
        ),
        cold_start=suggestion.cold_start,
        real_consults=suggestion.real_consults,
        needed=suggestion.needed,
    )


@router.get("/status")
def status(
    request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> StatusOut:
    """Whether the assist is on for this user; the request form asks as it opens, which
    also starts loading the analyser and the model in the background."""
    enabled = user.role == Role.GP and service.is_enabled(session, user.organisation_id)
    if enabled:
        jobs.start_warm_up(request.app.state.engine, settings)
    return StatusOut(enabled=enabled)


@router.post("/suggest")
def suggest(
    body: SuggestIn,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> SuggestOut:
    """Specialty (top three, with the words that drove it) and urgency for a GP's question."""
    suggestion = service.suggest(
        session, user, body.text, settings, chosen=body.urgency, ip=client_ip(request)
    )
    return suggestion_out(suggestion, request_locale(request, viewer_of(request)))


@router.get("/similar/{public_id}")
def similar(
    viewing: ConsultForAssigned, session: SessionDep, settings: SettingsDep
) -> list[SimilarOut]:
    """The assigned specialist's five most similar closed consults they may open."""
    return [
        SimilarOut(
            public_id=s.consult.public_id,
            question=s.consult.clinical_question,
            summary=s.summary,
            outcome=s.outcome,
            similarity=round(s.similarity, 3),
            completed_at=s.consult.completed_at,
        )
        for s in service.similar_consults(session, viewing, settings)
    ]
