"""Who is asking, and may they: the dependencies every route uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from server.accounts import service
from server.accounts.errors import CsrfRejected, NotAuthenticated
from server.accounts.models import LoginSession, Role, User
from server.accounts.security import csrf_token, csrf_valid, token_hash
from server.db import SessionDep
from server.errors import Forbidden, NotFound
from server.settings import Settings

SESSION_COOKIE = "dari_session"
ANON_COOKIE = "dari_anon"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def csrf_binding(request: Request) -> str:
    """What the CSRF token is bound to: the session if any, else the anonymous cookie."""
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token:
        return token_hash(session_token)
    anon = request.cookies.get(ANON_COOKIE) or getattr(request.state, "anon_nonce", "")
    return f"anon:{anon}" if anon else ""


def csrf_for(request: Request) -> str:
    """The token a page embeds in its forms and sends in X-CSRF-Token."""
    key: str = request.app.state.secret_key
    return csrf_token(key, csrf_binding(request))


async def verify_csrf(connection: HTTPConnection) -> None:
    """Every state-changing request must carry the token bound to its session.

    Typed as HTTPConnection so the app-wide dependency also accepts WebSocket routes
    (they check the Origin header instead: a browser cannot forge it).
    """
    if connection.scope["type"] != "http":
        return
    request = cast(Request, connection)
    if request.method not in UNSAFE_METHODS:
        return
    presented = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if not presented and (
        content_type.startswith("application/x-www-form-urlencoded")
        or content_type.startswith("multipart/form-data")
    ):
        form = await request.form()  # cached by Starlette; the handler reads the same form
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    key: str = request.app.state.secret_key
    if not csrf_valid(key, csrf_binding(request), presented):
        raise CsrfRejected()


def optional_user(request: Request, session: SessionDep, settings: SettingsDep) -> User | None:
    cached: tuple[User, LoginSession] | None = getattr(request.state, "auth", None)
    if cached is None:
        cached = service.resolve_session(session, settings, request.cookies.get(SESSION_COOKIE))
        request.state.auth = cached
    return cached[0] if cached else None


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise NotAuthenticated()
    return user


def current_login_session(
    request: Request, _: Annotated[User, Depends(current_user)]
) -> LoginSession:
    auth: tuple[User, LoginSession] = request.state.auth
    return auth[1]


def enrolling_login(
    request: Request, session: SessionDep, settings: SettingsDep
) -> tuple[User, LoginSession]:
    """A full session, or one pending two-factor enrolment (never one pending its code:
    the password alone must not let anyone set up a new authenticator)."""
    found = service.resolve_session(
        session, settings, request.cookies.get(SESSION_COOKIE), pending=True
    )
    if found is None or found[1].pending not in ("", "enrol"):
        raise NotAuthenticated()
    request.state.auth = found
    return found


OptionalUser = Annotated[User | None, Depends(optional_user)]
EnrollingLogin = Annotated[tuple[User, LoginSession], Depends(enrolling_login)]
CurrentUser = Annotated[User, Depends(current_user)]
CurrentLoginSession = Annotated[LoginSession, Depends(current_login_session)]


def require_role(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets only these roles through (403 for the others)."""
    allowed = {role.value for role in roles}

    def guard(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise Forbidden("only for: %(roles)s", params={"roles": tuple(sorted(allowed))})
        return user

    return guard


GPUser = Annotated[User, Depends(require_role(Role.GP))]
SpecialistUser = Annotated[User, Depends(require_role(Role.SPECIALIST))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
ClinicianUser = Annotated[User, Depends(require_role(Role.GP, Role.SPECIALIST))]


def ensure_same_organisation(user: User, organisation_id: int | None) -> None:
    """Another organisation's private data is reported as absent (404, not 403)."""
    if organisation_id is None or user.organisation_id != organisation_id:
        raise NotFound()
