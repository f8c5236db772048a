"""The standalone shared-note page (the consult and call pages include the same panel)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.consults.access import Access
from server.consults.deps import ConsultForParticipant
from web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/consults/{public_id}/notes")
def notes_page(request: Request, viewing: ConsultForParticipant) -> Response:
    """The note of one consult, full page."""
    is_specialist = viewing.access == Access.ASSIGNED
    return render(request, "notes/page.html", consult=viewing.consult, can_draft=is_specialist)
