"""Login and logout pages, and who is looking at any page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import object_session

from server.accounts import service
from server.accounts.deps import SESSION_COOKIE, OptionalUser, SettingsDep, client_ip, csrf_for
from server.accounts.errors import InvalidCredentials, TooManyAttempts
from server.accounts.models import Organisation, User
from server.accounts.router import set_session_cookie
from server.db import SessionDep
from web.render import Viewer, render

router = APIRouter(include_in_schema=False)


def organisation_timezone(user: User) -> str | None:
    """The zone of the user's organisation (the clinic's clock)."""
    # The request's own session loaded the user: reuse it rather than open a second
    # transaction (on SQLite every transaction takes the write lock).
    session = object_session(user)
    if session is None:
        return None
    organisation = session.get(Organisation, user.organisation_id)
    return organisation.timezone if organisation is not None else None


def page_viewer(request: Request) -> Viewer:
    """What every page shows of who is looking: the app hands this to web.render."""
    auth: tuple[User, object] | None = getattr(request.state, "auth", None)
    user = auth[0] if auth else None
    return Viewer(
        user=user,
        locale=user.locale if user is not None else None,
        timezone=organisation_timezone(user) if user is not None else None,
        csrf_token=csrf_for(request),
    )


@router.get("/login")
def login_page(request: Request, user: OptionalUser) -> Response:
    """The login form (or home, if already logged in)."""
    if user is not None:
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html")


@router.post("/login")
def login_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=200)],
) -> Response:
    """Check the credentials; on success go home, else show the form again."""
    try:
        started = service.login(
            session,
            settings,
            email=email,
            password=password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
        )
    except (InvalidCredentials, TooManyAttempts) as refusal:
        # Rendered, not raised, so that the failed attempt is committed.
        return render(
            request,
            "login.html",
            status=refusal.status,
            headers=refusal.headers,
            error_code=refusal.code,
            email=email,
        )
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, started.token)
    return response


@router.post("/logout")
def logout_submit(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """End the session (if any) and go back to the login page."""
    resolved = service.resolve_session(session, settings, request.cookies.get(SESSION_COOKIE))
    if resolved is not None:
        service.end_session(session, resolved[1], ip=client_ip(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
