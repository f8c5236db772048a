"""Shared-note HTTP routes: the note's state and an excerpt for the report.

The live WebSocket is signaling/notes.py on the signaling stack, with the server's side
in server/notes/gate.py; server/app.py registers it at /notes/ws/{public_id}.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from server.consults.deps import ConsultForAssigned, ConsultForParticipant
from server.db import SessionDep
from server.notes import service
from server.validation import QueryCount

router = APIRouter()


@router.get("/api/consults/{public_id}/notes")
def note_state(viewing: ConsultForParticipant, session: SessionDep) -> dict[str, Any]:
    """The note's text and revision (participants only; others get 404)."""
    return service.state(session, viewing.consult)


@router.get("/api/consults/{public_id}/notes/draft")
def note_draft(
    viewing: ConsultForAssigned,
    session: SessionDep,
    start: QueryCount = None,
    end: QueryCount = None,
) -> dict[str, Any]:
    """The whole note or a selection (code points), to start the report draft from."""
    text = service.excerpt(session, viewing.consult, start, end)
    return {"text": text, "rev": service.state(session, viewing.consult)["rev"]}
