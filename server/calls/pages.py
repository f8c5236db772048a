"""The call page and the pre-call check page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from server.accounts.deps import CurrentUser, OptionalUser, SettingsDep
from server.consults import lifecycle
from server.consults.access import Access
from server.consults.deps import ConsultForParticipant
from server.consults.models import ConsultMode
from web.render import render

router = APIRouter(include_in_schema=False)

# Video bandwidth caps offered on the call page, in kbps (0 = no cap).
BANDWIDTH_CHOICES = (150, 300, 800, 0)
# Where the signaling service listens (mounted by the server).
SIGNALING_PATH = "/ws"


@router.get("/consults/{public_id}/call")
def call_page(request: Request, viewing: ConsultForParticipant, settings: SettingsDep) -> Response:
    """The video call of a consult, for its participants only."""
    consult = viewing.consult
    consult_url = f"/consults/{consult.public_id}"
    if not lifecycle.call_joinable(consult):
        # A consult whose call is over (or that never had one) has no call page: its own
        # page says what comes next.
        return RedirectResponse(consult_url, status_code=303)
    # A live video consult switches to written with the same record (the consults'
    # mode route); one already written just opens the thread.
    switch_url = f"{consult_url}/mode" if consult.mode == ConsultMode.VIDEO else ""
    return render(
        request,
        "calls/call.html",
        consult=consult,
        room=consult.public_id,
        signaling_path=SIGNALING_PATH,
        consult_url=consult_url,
        # "Continue in writing" opens the consult's written thread: the case is already there.
        thread_url=f"{consult_url}#thread",
        switch_url=switch_url,
        bandwidth_choices=BANDWIDTH_CHOICES,
        # The assigned specialist starts the report from the note without leaving the call.
        # (Not once signed: the note is read-only then, amendments start on the consult page.)
        can_draft=viewing.access == Access.ASSIGNED and consult.report_signed_at is None,
        ice_policy=settings.ice_transport_policy,
    )


@router.get("/precall")
def precall_page(request: Request, user: CurrentUser, settings: SettingsDep) -> Response:
    """Camera, microphone and link check before a consult (same ICE policy as the call)."""
    return render(
        request,
        "calls/precall.html",
        signaling_path=SIGNALING_PATH,
        ice_policy=settings.ice_transport_policy,
    )


@router.get("/calls/guest")
def guest_call_page(request: Request, user: OptionalUser, settings: SettingsDep) -> Response:
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
        switch_url="",
        bandwidth_choices=BANDWIDTH_CHOICES,
        ice_policy=settings.ice_transport_policy,
    )
