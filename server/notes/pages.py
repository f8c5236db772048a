"""The standalone shared-note page (the consult and call pages include the same panel)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.consults import access
from server.notes.deps import ParticipantConsult
from web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/consults/{public_id}/notes")
def notes_page(request: Request, consult: ParticipantConsult) -> Response:
    """The note of one consult, full page."""
    user = request.state.auth[0]
    is_specialist = access.access_of(user, consult) == access.Access.ASSIGNED
    return render(request, "notes/page.html", consult=consult, can_draft=is_specialist)
