"""Urgent pages: the ring on a specialist's home page, taking the consult from it, the
GP's progress on the consult page, and the administrator's escalation view. The same
services as the API (server.scheduling.urgent); what they show is in urgent_views."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session

from server.accounts.deps import AdminUser, CurrentUser, SettingsDep, SpecialistUser, client_ip
from server.accounts.models import Role, User
from server.audit import service as audit
from server.clock import utcnow
from server.consults.access import Access, find_consult
from server.consults.deps import ConsultForUser
from server.consults.errors import ConsultNotFound
from server.db import SessionDep
from server.errors import Conflict, NotFound
from server.scheduling import urgent, urgent_views
from server.scheduling.models import UrgentRequest
from web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/urgent/panel")
def ring_panel(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The ring state for the home page's panel (read again on every notification)."""
    panel = urgent_views.panel_for(session, user, utcnow())
    response = render(request, "urgent/_panel.html", panel=panel)
    response.headers["Cache-Control"] = "no-store"
    return response


def _rung(session: Session, user: User, item: UrgentRequest) -> bool:
    return user.id in urgent.rung_ids(session, item.id or 0)


@router.get("/urgent/{public_id}")
def ring_page(public_id: str, request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """One urgent consult as the ring shows it: ringing with its accept button, or who
    took it. For those rung or of its specialty; never a 404 for the one who lost."""
    consult = find_consult(session, public_id)
    item = urgent.for_consult(session, consult.id or 0) if consult else None
    if consult is None or item is None:
        raise ConsultNotFound()
    if user.role == Role.GP and user.organisation_id == consult.organisation_id:
        return RedirectResponse(f"/consults/{public_id}", status_code=303)
    if user.role == Role.ADMIN and user.id in urgent.hub_admins(session, item.region_id):
        return RedirectResponse(f"/admin/urgent#u-{item.id}", status_code=303)
    allowed = user.role == Role.SPECIALIST and (
        user.specialty_id == item.specialty_id or _rung(session, user, item)
    )
    if not allowed:
        raise ConsultNotFound()
    shown = urgent_views.card(session, item, consult)
    return render(
        request,
        "urgent/ring.html",
        card=shown,
        mine=item.accepted_by_id == user.id,
    )


@router.post("/urgent/{public_id}/accept")
def ring_accept(
    public_id: str,
    request: Request,
    session: SessionDep,
    user: SpecialistUser,
) -> Response:
    """Take the urgent consult (the same service as the API); the one who is late is
    shown who took it, never an error page."""
    consult = find_consult(session, public_id)
    if consult is None:
        raise ConsultNotFound()
    try:
        taken = urgent.accept_consult(session, user, consult, ip=client_ip(request))
    except Conflict:
        return RedirectResponse(f"/urgent/{public_id}", status_code=303)
    except NotFound:
        raise ConsultNotFound() from None
    if taken is None:
        raise ConsultNotFound()
    return RedirectResponse(f"/consults/{public_id}", status_code=303)


@router.get("/consults/{public_id}/urgent-progress")
def progress_fragment(
    request: Request, viewing: ConsultForUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """The GP's view of the ring ladder (consults/_urgent_progress.html reads it live)."""
    if viewing.access not in (Access.CLINIC, Access.ASSIGNED, Access.ADMIN):
        raise ConsultNotFound()
    shown = urgent_views.progress(session, viewing.consult, settings)
    response = render(request, "urgent/_progress.html", progress=shown, settings=settings)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the administrator's escalation view ---------------------------------------------


def _for_admin(session: Session, admin: User, urgent_id: int) -> UrgentRequest:
    item = session.get(UrgentRequest, urgent_id)
    if item is None or admin.id not in urgent.hub_admins(session, item.region_id):
        raise NotFound("urgent request")
    return item


def _back(urgent_id: int) -> RedirectResponse:
    return RedirectResponse(f"/admin/urgent#u-{urgent_id}", status_code=303)


@router.get("/admin/urgent")
def escalation_view(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """Open urgent consults with their ring history and who is on call; the triage view
    only (what the ring shows), and every look is audited."""
    found = urgent_views.escalations_for(session, admin, utcnow())
    audit.record(
        session,
        "urgent.admin_view",
        actor_id=admin.id,
        ip=client_ip(request),
        object_type="urgentrequest",
        organisation_id=admin.organisation_id,
        detail={"urgent": [e.card.urgent.id for e in found]},
    )
    return render(request, "urgent/escalations.html", escalations=found)


@router.post("/admin/urgent/{urgent_id}/ring")
def escalation_ring(
    urgent_id: int,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    specialist_id: Annotated[int, Form()],
) -> Response:
    """Ring one named specialist now."""
    _for_admin(session, admin, urgent_id)
    try:
        urgent.ring_named(session, admin, urgent_id, specialist_id, ip=client_ip(request))
    except Conflict:
        return _back(urgent_id)  # taken meanwhile, or already rung: the view says which
    return _back(urgent_id)


@router.post("/admin/urgent/{urgent_id}/widen")
def escalation_widen(
    urgent_id: int,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
) -> Response:
    """Widen the ring: the national on-call pool, then every specialist of the specialty."""
    _for_admin(session, admin, urgent_id)
    try:
        urgent.widen(session, admin, urgent_id, ip=client_ip(request))
    except Conflict:
        return _back(urgent_id)
    return _back(urgent_id)
