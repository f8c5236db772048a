"""Login and logout pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from server.accounts import service
from server.accounts.deps import SESSION_COOKIE, OptionalUser, SettingsDep, client_ip
from server.accounts.errors import InvalidCredentials, TooManyAttempts
from server.accounts.router import set_session_cookie
from server.db import SessionDep
from web.render import render

router = APIRouter(include_in_schema=False)


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
