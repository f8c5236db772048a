"""The call page and the pre-call check page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.accounts.deps import CurrentUser, OptionalUser
from server.calls.deps import CallConsult
from web.render import render

router = APIRouter(include_in_schema=False)

# Video bandwidth caps offered on the call page, in kbps (0 = no cap).
BANDWIDTH_CHOICES = (150, 300, 800, 0)
# Where the signaling service listens (mounted by the server).
SIGNALING_PATH = "/ws"


@router.get("/consults/{public_id}/call")
def call_page(request: Request, user: CurrentUser, consult: CallConsult) -> Response:
    """The video call of a consult, for its participants only."""
    consult_url = f"/consults/{consult.public_id}"
    return render(
        request,
        "calls/call.html",
        consult=consult,
        room=consult.public_id,
        signaling_path=SIGNALING_PATH,
        consult_url=consult_url,
        # "Continue in writing" opens the consult's written thread: the case is already there.
        thread_url=f"{consult_url}#messages",
        bandwidth_choices=BANDWIDTH_CHOICES,
    )


@router.get("/precall")
def precall_page(request: Request, user: CurrentUser) -> Response:
    """Camera, microphone and link check before a consult."""
    return render(request, "calls/precall.html", signaling_path=SIGNALING_PATH)


@router.get("/calls/guest")
def guest_call_page(request: Request, user: OptionalUser) -> Response:
    """A guest's call page; the invitation token stays in the URL fragment, never sent here."""
    return render(
        request,
        "calls/call.html",
        guest=True,
        consult=None,
        room="",
        signaling_path=SIGNALING_PATH,
        consult_url="",
        thread_url="",
        bandwidth_choices=BANDWIDTH_CHOICES,
    )
