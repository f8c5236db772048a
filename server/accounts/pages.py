"""Login and logout pages, and who is looking at any page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import object_session

from server.accounts import service, twofactor
from server.accounts.deps import (
    SESSION_COOKIE,
    CurrentLoginSession,
    CurrentUser,
    EnrollingLogin,
    OptionalUser,
    SettingsDep,
    client_ip,
    csrf_for,
)
from server.accounts.ending import announce_ended, device_of
from server.accounts.errors import InvalidCredentials, InvalidOtp, TooManyAttempts
from server.accounts.models import Organisation, User
from server.accounts.router import set_session_cookie
from server.db import SessionDep
from server.errors import AppError
from server.validation import PathId
from web.render import N_, Viewer, render

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


def _pending(request: Request, session: SessionDep, settings: SettingsDep) -> str | None:
    found = service.resolve_session(
        session, settings, request.cookies.get(SESSION_COOKIE), pending=True
    )
    return found[1].pending if found is not None else None


@router.get("/login")
def login_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: OptionalUser
) -> Response:
    """The login form (or home, if already logged in; or the step still to do)."""
    if user is not None:
        return RedirectResponse("/", status_code=303)
    pending = _pending(request, session, settings)
    if pending == "enrol":
        return RedirectResponse("/account/two-factor", status_code=303)
    return render(request, "login.html", step="code" if pending == "otp" else "password")


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
            two_step=True,
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
            step="password",
        )
    # Redirected, not rendered: the next form's CSRF token must be bound to the new
    # session cookie (GET /login shows the code step of a session pending it).
    target = {"otp": "/login", "enrol": "/account/two-factor"}.get(started.record.pending, "/")
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, started.token)
    return response


@router.post("/login/code")
def login_code(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=32)],
) -> Response:
    """The second step: the authenticator's code, or a recovery code."""
    found = service.resolve_session(
        session, settings, request.cookies.get(SESSION_COOKIE), pending=True
    )
    if found is None or found[1].pending != "otp":
        return RedirectResponse("/login", status_code=303)
    user, record = found
    try:
        service.complete_second_factor(session, settings, record, user, code, ip=client_ip(request))
    except (InvalidOtp, TooManyAttempts) as refusal:
        # Rendered, not raised, so that the failed attempt is committed.
        return render(
            request,
            "login.html",
            status=refusal.status,
            headers=refusal.headers,
            error_code=refusal.code,
            step="code",
        )
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
def logout_submit(
    request: Request, session: SessionDep, settings: SettingsDep, tasks: BackgroundTasks
) -> Response:
    """End the session (if any) and go back to the login page; its sockets close too."""
    resolved = service.resolve_session(
        session, settings, request.cookies.get(SESSION_COOKIE), pending=True
    )
    if resolved is not None:
        service.end_session(session, resolved[1], ip=client_ip(request))
        announce_ended(request, tasks, resolved[1].user_id, [resolved[1].id or 0])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- the user's own account: open sessions and password -------------------------------


def _account_view(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: User,
    current_id: int | None,
    *,
    status: int = 200,
    error: str = "",
    saved: bool = False,
) -> Response:
    rows = [
        {
            "id": row.id,
            "device": device_of(row.user_agent),
            "ip": row.ip,
            "created_at": row.created_at,
            "last_seen_at": row.last_seen_at,
            "current": row.id == current_id,
        }
        for row in service.active_sessions(session, settings, user)
    ]
    return render(
        request, "account/sessions.html", status=status, sessions=rows, error=error, saved=saved
    )


@router.get("/account")
def account_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    record: CurrentLoginSession,
) -> Response:
    """The user's open sessions (device, place, last seen), each with an end button,
    and the password form."""
    return _account_view(request, session, settings, user, record.id)


@router.post("/account/sessions/{session_id}/end")
def account_end_session(
    session_id: PathId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    record: CurrentLoginSession,
    tasks: BackgroundTasks,
) -> Response:
    service.end_own_session(session, user, session_id, ip=client_ip(request))
    announce_ended(request, tasks, user.id or 0, [session_id])
    if session_id == record.id:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return RedirectResponse("/account", status_code=303)


@router.post("/account/password")
def account_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    record: CurrentLoginSession,
    tasks: BackgroundTasks,
    current: Annotated[str, Form(max_length=200)],
    new: Annotated[str, Form(max_length=200)],
    again: Annotated[str, Form(max_length=200)],
) -> Response:
    """Change the password; the user's other sessions end."""
    if new != again:
        return _account_view(
            request,
            session,
            settings,
            user,
            record.id,
            status=422,
            error=N_("The two new passwords differ."),
        )
    try:
        ended = service.change_password(
            session,
            user,
            current=current,
            new=new,
            keep_session_id=record.id,
            ip=client_ip(request),
        )
    except AppError as refused:
        message = (
            "The current password is wrong."
            if refused.code == "wrong_password"
            else refused.message
        )
        return _account_view(request, session, settings, user, record.id, status=422, error=message)
    announce_ended(request, tasks, user.id or 0, ended)
    return _account_view(request, session, settings, user, record.id, saved=True)


@router.get("/account/two-factor")
def two_factor_page(request: Request, session: SessionDep, login: EnrollingLogin) -> Response:
    """Set up the authenticator: a QR code (drawn here), the secret to type instead,
    and the field for a first code."""
    user, record = login
    return _two_factor_view(request, session, user, forced=record.pending == "enrol")


def _two_factor_view(
    request: Request,
    session: SessionDep,
    user: User,
    *,
    forced: bool,
    status: int = 200,
    error: bool = False,
) -> Response:
    enrolled = user.totp_enabled_at is not None
    # Once on, the secret is never shown again (a borrowed session must not copy it).
    secret = "" if enrolled else twofactor.start_enrolment(session, user)
    return render(
        request,
        "account/two_factor.html",
        status=status,
        enrolled=enrolled,
        forced=forced,
        secret=secret,
        qr_svg=twofactor.qr_svg(twofactor.provisioning_uri(user)) if secret else "",
        error=error,
        recovery_codes=None,
    )


@router.post("/account/two-factor")
def two_factor_confirm(
    request: Request,
    session: SessionDep,
    login: EnrollingLogin,
    code: Annotated[str, Form(max_length=8)],
) -> Response:
    user, record = login
    forced = record.pending == "enrol"
    try:
        codes = service.complete_enrolment(session, record, user, code, ip=client_ip(request))
    except AppError:
        return _two_factor_view(request, session, user, forced=forced, status=422, error=True)
    return render(
        request,
        "account/two_factor.html",
        enrolled=True,
        forced=False,
        secret="",
        qr_svg="",
        error=False,
        recovery_codes=codes,
    )
