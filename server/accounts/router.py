"""Accounts API: login, logout, the current user, organisations and their staff."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request, Response
from fastapi.responses import JSONResponse
from sqlmodel import col, select

from server.accounts import service, twofactor
from server.accounts.deps import (
    SESSION_COOKIE,
    AdminUser,
    CurrentLoginSession,
    CurrentUser,
    EnrollingLogin,
    SettingsDep,
    client_ip,
    csrf_for,
)
from server.accounts.ending import announce_ended, device_of
from server.accounts.errors import InvalidCredentials, InvalidOtp, OtpRequired, TooManyAttempts
from server.accounts.models import Organisation, Specialty
from server.accounts.schemas import (
    CsrfOut,
    LocaleIn,
    LoginIn,
    MeOut,
    OrganisationOut,
    PasswordIn,
    SessionOut,
    SpecialtyIn,
    SpecialtyOut,
    TotpConfirmIn,
    TotpConfirmOut,
    TotpStartOut,
    UserCreateIn,
    UserOut,
)
from server.accounts.security import csrf_token, token_hash
from server.db import SessionDep
from server.errors import error_body
from server.validation import PathId

router = APIRouter(prefix="/api", tags=["accounts"])


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.get("/auth/csrf", response_model=CsrfOut)
def get_csrf(request: Request) -> CsrfOut:
    """A CSRF token for an anonymous client (needed to log in)."""
    return CsrfOut(csrf_token=csrf_for(request))


@router.post("/auth/login", response_model=MeOut)
def login(body: LoginIn, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Log in with email and password; sets the session cookie."""
    try:
        started = service.login(
            session,
            settings,
            email=body.email,
            password=body.password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent", ""),
            otp=body.otp,
        )
    except (InvalidCredentials, TooManyAttempts, OtpRequired, InvalidOtp) as refusal:
        # Returned, not raised: the failed attempt and its audit event must be committed.
        return JSONResponse(
            error_body(refusal.code, refusal.message), refusal.status, headers=refusal.headers
        )
    key: str = request.app.state.secret_key
    body_out = MeOut(
        user=UserOut.of(started.user),
        csrf_token=csrf_token(key, token_hash(started.token)),
        pending=started.record.pending,
    )
    response = JSONResponse(body_out.model_dump())
    set_session_cookie(request, response, started.token)
    return response


@router.post("/auth/logout", status_code=204)
def logout(
    request: Request, session: SessionDep, record: CurrentLoginSession, tasks: BackgroundTasks
) -> Response:
    """End the session on the server and clear the cookie; its sockets close too."""
    service.end_session(session, record, ip=client_ip(request))
    announce_ended(request, tasks, record.user_id, [record.id or 0])
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=MeOut)
def me(request: Request, user: CurrentUser) -> MeOut:
    """The logged-in user and the CSRF token their requests must carry."""
    return MeOut(user=UserOut.of(user), csrf_token=csrf_for(request))


@router.put("/me/locale", status_code=204)
def set_locale(body: LocaleIn, session: SessionDep, user: CurrentUser) -> Response:
    """Change the user's language."""
    service.set_locale(session, user, body.locale)
    return Response(status_code=204)


@router.get("/organisations", response_model=list[OrganisationOut])
def list_organisations(session: SessionDep, _: CurrentUser) -> list[OrganisationOut]:
    """The public directory of organisations (names, kinds, regions; no staff)."""
    rows = session.exec(select(Organisation).order_by(col(Organisation.id))).all()
    return [OrganisationOut.of(row) for row in rows]


@router.get("/specialties", response_model=list[SpecialtyOut])
def list_specialties(session: SessionDep, _: CurrentUser) -> list[SpecialtyOut]:
    """All specialties."""
    rows = session.exec(select(Specialty).order_by(col(Specialty.id))).all()
    return [SpecialtyOut.of(row) for row in rows]


@router.get("/organisations/{organisation_id}/users", response_model=list[UserOut])
def organisation_users(
    organisation_id: PathId, session: SessionDep, user: CurrentUser
) -> list[UserOut]:
    """An organisation's staff: visible to its own members only."""
    return [UserOut.of(u) for u in service.visible_users(session, user, organisation_id)]


@router.get("/users/{user_id}", response_model=UserOut)
def get_user(user_id: PathId, session: SessionDep, user: CurrentUser) -> UserOut:
    """One user: yourself or a colleague of your organisation."""
    return UserOut.of(service.get_user_for(session, user, user_id))


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(
    body: UserCreateIn, request: Request, session: SessionDep, admin: AdminUser
) -> UserOut:
    """An administrator adds a user to their own organisation."""
    user = service.create_user(
        session,
        email=body.email,
        name=body.name,
        role=body.role,
        organisation_id=admin.organisation_id,
        password=body.password,
        specialty_id=body.specialty_id,
        locale=body.locale,
        actor_id=admin.id,
        ip=client_ip(request),
    )
    return UserOut.of(user)


@router.post("/users/{user_id}/deactivate", response_model=UserOut)
def deactivate_user(
    user_id: PathId, request: Request, session: SessionDep, admin: AdminUser, tasks: BackgroundTasks
) -> UserOut:
    """An administrator stops a colleague's access (their sessions and sockets end at once)."""
    user = service.set_active(session, admin, user_id, False, ip=client_ip(request))
    announce_ended(request, tasks, user_id, None)
    return UserOut.of(user)


@router.post("/users/{user_id}/sessions/revoke", status_code=204)
def revoke_sessions(
    user_id: PathId, request: Request, session: SessionDep, admin: AdminUser, tasks: BackgroundTasks
) -> Response:
    """An administrator ends every session of a colleague (a lost phone, a shared PC)."""
    service.revoke_sessions(session, admin, user_id, ip=client_ip(request))
    announce_ended(request, tasks, user_id, None)
    return Response(status_code=204)


@router.get("/me/sessions", response_model=list[SessionOut])
def my_sessions(
    session: SessionDep, settings: SettingsDep, user: CurrentUser, record: CurrentLoginSession
) -> list[SessionOut]:
    """The user's open sessions: device, address, last use; `current` is this one."""
    return [
        SessionOut(
            id=row.id or 0,
            device=device_of(row.user_agent),
            ip=row.ip,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            current=row.id == record.id,
        )
        for row in service.active_sessions(session, settings, user)
    ]


@router.post("/me/sessions/{session_id}/end", status_code=204)
def end_my_session(
    session_id: PathId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    tasks: BackgroundTasks,
) -> Response:
    """End one of the user's sessions (this one too: that is a logout)."""
    service.end_own_session(session, user, session_id, ip=client_ip(request))
    announce_ended(request, tasks, user.id or 0, [session_id])
    return Response(status_code=204)


@router.put("/me/password", status_code=204)
def change_password(
    body: PasswordIn,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    record: CurrentLoginSession,
    tasks: BackgroundTasks,
) -> Response:
    """Change the password; every other session of the user ends."""
    ended = service.change_password(
        session,
        user,
        current=body.current,
        new=body.new,
        keep_session_id=record.id,
        ip=client_ip(request),
    )
    announce_ended(request, tasks, user.id or 0, ended)
    return Response(status_code=204)


@router.post("/users/{user_id}/reactivate", response_model=UserOut)
def reactivate_user(
    user_id: PathId, request: Request, session: SessionDep, admin: AdminUser
) -> UserOut:
    """An administrator restores a colleague's access."""
    return UserOut.of(service.set_active(session, admin, user_id, True, ip=client_ip(request)))


@router.post("/specialties", response_model=SpecialtyOut, status_code=201)
def create_specialty(
    body: SpecialtyIn, request: Request, session: SessionDep, admin: AdminUser
) -> SpecialtyOut:
    """An administrator adds a specialty to the shared list."""
    specialty = service.create_specialty(
        session,
        code=body.code,
        name_ko=body.name_ko,
        name_en=body.name_en,
        actor_id=admin.id,
        organisation_id=admin.organisation_id,
        ip=client_ip(request),
    )
    return SpecialtyOut.of(specialty)


@router.post("/me/totp", response_model=TotpStartOut)
def start_totp(session: SessionDep, login: EnrollingLogin) -> TotpStartOut:
    """Start two-factor enrolment: the secret for the authenticator app (or its QR URI)."""
    user, _ = login
    secret = twofactor.start_enrolment(session, user)
    return TotpStartOut(secret=secret, uri=twofactor.provisioning_uri(user))


@router.post("/me/totp/confirm", response_model=TotpConfirmOut)
def confirm_totp(
    body: TotpConfirmIn, request: Request, session: SessionDep, login: EnrollingLogin
) -> TotpConfirmOut:
    """Confirm with a first code: two-factor is on; the recovery codes, shown this once."""
    user, record = login
    codes = service.complete_enrolment(session, record, user, body.code, ip=client_ip(request))
    return TotpConfirmOut(recovery_codes=codes)
