"""Each role's home page and the language switch."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from server.accounts import service as accounts
from server.accounts.deps import OptionalUser, client_ip
from server.accounts.models import Organisation, Region, Role, Specialty
from server.consults import lifecycle
from server.consults import service as consults_service
from server.db import SessionDep
from server.home import views
from web.render import LANG_COOKIE, SUPPORTED, render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, session: SessionDep, user: OptionalUser) -> Response:
    """Each role lands on its own home page."""
    if user is None:
        return RedirectResponse("/login", status_code=303)
    organisation = session.get(Organisation, user.organisation_id)
    region = session.get(Region, organisation.region_id) if organisation else None
    specialty = session.get(Specialty, user.specialty_id) if user.specialty_id else None
    context: dict[str, Any] = {
        "organisation": organisation,
        "region": region,
        "specialty": specialty,
    }
    if user.role in (Role.GP, Role.SPECIALIST):
        # The list shows chart numbers: listing it is audited like the consult list.
        consults = consults_service.list_for(session, user, client_ip(request))
        if user.role == Role.GP:
            context["home"] = views.gp_home(
                consults, consults_service.awaiting_clinic(session, consults)
            )
        else:
            context["inbox"] = views.inbox(consults, user)
        context["can_join_call"] = lifecycle.call_joinable
    if user.role == Role.ADMIN:
        context["staff"] = accounts.visible_users(session, user, user.organisation_id)
        context["organisations"] = session.exec(
            select(Organisation).order_by(col(Organisation.id))
        ).all()
    return render(request, f"home_{user.role}.html", **context)


@router.post("/lang")
def switch_language(
    request: Request,
    session: SessionDep,
    user: OptionalUser,
    locale: Annotated[str, Form()],
    next_url: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    """Switch the interface language (remembered for the user, or in a cookie)."""
    if locale not in SUPPORTED:
        locale = "ko"
    if user is not None:
        accounts.set_locale(session, user, locale)
    # Only local paths: never an open redirect.
    target = next_url if next_url.startswith("/") and not next_url.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 86400, samesite="lax", httponly=True)
    return response
