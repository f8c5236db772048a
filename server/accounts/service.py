"""Rules for users, sessions and login, callable without HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from server.accounts import twofactor
from server.accounts.errors import InvalidCredentials, InvalidOtp, OtpRequired, TooManyAttempts
from server.accounts.models import (
    LoginAttempt,
    LoginSession,
    Organisation,
    OrgKind,
    Region,
    Role,
    Specialty,
    User,
)
from server.accounts.security import (
    hash_password,
    new_token,
    password_problem,
    token_hash,
    verify_password,
)
from server.audit import service as audit
from server.clock import utcnow
from server.errors import AppError, NotFound
from server.ops import metrics
from server.settings import Settings

LOCALES = ("ko", "en")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    role: str,
    organisation_id: int,
    password: str,
    specialty_id: int | None = None,
    locale: str = "ko",
    actor_id: int | None = None,
    ip: str = "",
) -> User:
    """Validate everything first, so bad input writes nothing."""
    email = normalise_email(email)
    if "@" not in email or len(email) > 254 or email.startswith("@") or email.endswith("@"):
        raise AppError(
            "invalid_email", "not an email address: %(email)s", 422, params={"email": repr(email)}
        )
    if not name.strip():
        raise AppError("invalid_name", "name must not be empty", 422)
    if role not in {r.value for r in Role}:
        raise AppError(
            "invalid_role",
            "unknown role %(role)s; use gp, specialist, admin or region_authority",
            422,
            params={"role": repr(role)},
        )
    if locale not in LOCALES:
        raise AppError(
            "invalid_locale",
            "locale must be one of %(locales)s",
            422,
            params={"locales": ", ".join(LOCALES)},
        )
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise AppError(
            "unknown_organisation", "no organisation %(id)s", 422, params={"id": organisation_id}
        )
    if role == Role.SPECIALIST:
        if specialty_id is None or session.get(Specialty, specialty_id) is None:
            raise AppError("invalid_specialty", "a specialist needs a known specialty", 422)
    elif specialty_id is not None:
        raise AppError("invalid_specialty", "only specialists have a specialty", 422)
    if (role == Role.REGION_AUTHORITY) != (organisation.kind == OrgKind.AUTHORITY):
        raise AppError(
            "invalid_organisation",
            "regional-authority users, and only they, belong to an authority organisation",
            422,
        )
    problem = password_problem(password, (email, name))
    if problem:
        raise AppError("weak_password", problem, 422)
    if session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise AppError(
            "duplicate_email",
            "a user with email %(email)s already exists",
            409,
            params={"email": email},
        )
    user = User(
        email=email,
        name=name.strip(),
        role=Role(role),
        organisation_id=organisation_id,
        specialty_id=specialty_id,
        locale=locale,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        "user.create",
        actor_id=actor_id,
        ip=ip,
        object_type="user",
        object_id=user.id or "",
        organisation_id=organisation_id,
        detail={"role": role, "email": email},
    )
    return user


def find_organisation(session: Session, key: str) -> Organisation | None:
    """By id, or by exact Korean or English name (for the CLI)."""
    if key.isdigit():
        return session.get(Organisation, int(key))
    return session.exec(
        select(Organisation).where((Organisation.name_ko == key) | (Organisation.name_en == key))
    ).first()


def find_specialty(session: Session, key: str) -> Specialty | None:
    if key.isdigit():
        return session.get(Specialty, int(key))
    return session.exec(
        select(Specialty).where(
            (Specialty.code == key) | (Specialty.name_ko == key) | (Specialty.name_en == key)
        )
    ).first()


# --- login -------------------------------------------------------------------------


def throttle_retry_after(session: Session, settings: Settings, email: str, ip: str) -> int:
    """Seconds to wait if this account or address failed too often, else 0."""
    now = utcnow()
    since = now - timedelta(minutes=settings.login_window_minutes)
    worst = 0
    for column, value in ((LoginAttempt.email, email), (LoginAttempt.ip, ip)):
        window_start = since
        if column is LoginAttempt.email:
            # A successful login clears the account's failures.
            last_success = session.exec(
                select(func.max(LoginAttempt.at)).where(
                    LoginAttempt.email == email, col(LoginAttempt.success).is_(True)
                )
            ).first()
            if last_success is not None:
                window_start = max(since, _aware(last_success))
        failures = session.exec(
            select(LoginAttempt.at)
            .where(
                column == value,
                col(LoginAttempt.success).is_(False),
                col(LoginAttempt.at) > window_start,
            )
            .order_by(col(LoginAttempt.at).desc())
            .limit(settings.login_max_failures)
        ).all()
        if len(failures) >= settings.login_max_failures:
            oldest = _aware(failures[-1])
            wait = oldest + timedelta(minutes=settings.login_window_minutes) - now
            worst = max(worst, int(wait.total_seconds()) + 1)
    return worst


def _aware(value: datetime) -> datetime:
    # func.max() bypasses the column type on SQLite and may return a naive value.
    from datetime import UTC

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StartedSession:
    token: str
    user: User
    record: LoginSession


def _throttle(session: Session, settings: Settings, email: str, ip: str) -> None:
    retry_after = throttle_retry_after(session, settings, email, ip)
    if retry_after:
        audit.record(
            session,
            "auth.login_throttled",
            actor_id=None,
            ip=ip,
            object_type="user",
            object_id=email,
            detail={"retry_after": retry_after},
        )
        metrics.record_login_failure("throttled")
        raise TooManyAttempts(retry_after)


def _failed(session: Session, email: str, ip: str, user: User | None, action: str) -> None:
    session.add(LoginAttempt(email=email, ip=ip, at=utcnow(), success=False))
    audit.record(
        session,
        action,
        actor_id=user.id if user else None,
        ip=ip,
        object_type="user",
        object_id=email,
    )
    metrics.record_login_failure("invalid" if action == "auth.login_failed" else action)


def login(
    session: Session,
    settings: Settings,
    *,
    email: str,
    password: str,
    ip: str,
    user_agent: str,
    otp: str | None = None,
    two_step: bool = False,
) -> StartedSession:
    """Check throttling, then the password, then the second factor; record the attempt.

    With two-factor on, the code comes in `otp`; without it, an API caller is told
    `otp_required` and a page (`two_step`) gets a session pending the code. A
    specialist or administrator not yet enrolled gets a session pending enrolment.
    """
    email = normalise_email(email)[:254]
    _throttle(session, settings, email, ip)
    user = session.exec(select(User).where(User.email == email)).first()
    ok = verify_password(user.password_hash if user else None, password)
    now = utcnow()
    if not ok or user is None or not user.active:
        _failed(session, email, ip, user, "auth.login_failed")
        raise InvalidCredentials()
    pending = ""
    if user.totp_enabled_at is not None:
        if otp:
            if not twofactor.second_factor_ok(session, user, otp):
                _failed(session, email, ip, user, "auth.otp_failed")
                raise InvalidOtp()
        elif two_step:
            pending = "otp"
        else:
            raise OtpRequired()
    elif user.role in settings.totp_required_roles:
        pending = "enrol"
    if not pending:
        session.add(LoginAttempt(email=email, ip=ip, at=now, success=True))
    token = new_token()
    record = LoginSession(
        token_hash=token_hash(token),
        user_id=user.id or 0,
        created_at=now,
        last_seen_at=now,
        ip=ip,
        user_agent=user_agent[:300],
        pending=pending,
    )
    session.add(record)
    audit.record(
        session,
        "auth.login" if not pending else f"auth.login_pending_{pending}",
        actor_id=user.id,
        ip=ip,
        object_type="user",
        object_id=user.id or "",
        organisation_id=user.organisation_id,
    )
    session.flush()
    return StartedSession(token=token, user=user, record=record)


# Writing last_seen_at on every request would turn every read into a write.
_TOUCH_EVERY = timedelta(seconds=60)


def complete_second_factor(
    session: Session, settings: Settings, record: LoginSession, user: User, code: str, *, ip: str
) -> None:
    """The code for a session pending it: throttled and recorded like a password."""
    _throttle(session, settings, user.email, ip)
    if record.pending != "otp" or not twofactor.second_factor_ok(session, user, code):
        _failed(session, user.email, ip, user, "auth.otp_failed")
        raise InvalidOtp()
    record.pending = ""
    session.add(record)
    session.add(LoginAttempt(email=user.email, ip=ip, at=utcnow(), success=True))
    audit.record(
        session,
        "auth.login",
        actor_id=user.id,
        ip=ip,
        object_type="user",
        object_id=user.id or "",
        organisation_id=user.organisation_id,
    )


def complete_enrolment(
    session: Session, record: LoginSession, user: User, code: str, *, ip: str
) -> list[str]:
    """Confirm the authenticator; a session pending enrolment becomes a full one."""
    codes = twofactor.confirm_enrolment(session, user, code, ip=ip)
    if record.pending == "enrol":
        record.pending = ""
        session.add(record)
    return codes


def resolve_session(
    session: Session,
    settings: Settings,
    token: str | None,
    *,
    pending: bool = False,
    touch: bool = True,
) -> tuple[User, LoginSession] | None:
    """The live session behind a cookie token, or None if unknown, ended or expired.

    A session still waiting for its second factor (or enrolment) counts only where
    `pending` is asked for: the pages of that step. With touch=False nothing is
    written (a read-only transaction); the caller then runs `touch_session` itself
    when `needs_touch` says so."""
    if not token:
        return None
    found = session.exec(
        select(LoginSession, User)
        .join(User, col(User.id) == LoginSession.user_id)
        .where(LoginSession.token_hash == token_hash(token))
    ).first()
    if found is None:
        return None
    record, user = found
    now = utcnow()
    if not _usable(settings, now, record, active=user.active, pending=pending):
        return None
    if touch and needs_touch(record, now):
        record.last_seen_at = now
        session.add(record)
    return user, record


def _usable(settings: Settings, now: datetime, record: Any, *, active: bool, pending: bool) -> bool:
    """The rule of a live session; `record` has LoginSession's time and pending fields
    (the ORM object or a row of them)."""
    idle_limit = record.last_seen_at + timedelta(minutes=settings.session_idle_minutes)
    absolute_limit = record.created_at + timedelta(hours=settings.session_absolute_hours)
    if record.ended_at is not None or not active or now > idle_limit or now > absolute_limit:
        return False
    return not (record.pending and not pending)


@dataclass(frozen=True)
class SessionPeek:
    """What a connect needs of a live session (read by `peek_session`)."""

    id: int
    user_id: int
    user_name: str
    last_seen_at: datetime


_LS = LoginSession.__table__  # type: ignore[attr-defined]
_USER = User.__table__  # type: ignore[attr-defined]
PEEK_SESSION = (
    sa_select(
        _LS.c.id,
        _LS.c.user_id,
        _LS.c.created_at,
        _LS.c.last_seen_at,
        _LS.c.ended_at,
        _LS.c.pending,
        _USER.c.name,
        _USER.c.active,
    )
    .join(_USER, _USER.c.id == _LS.c.user_id)
    .where(_LS.c.token_hash == bindparam("token_hash"))
)


def peek_session(
    connection: Connection, settings: Settings, token: str | None
) -> SessionPeek | None:
    """resolve_session(touch=False) for a hot path (signaling's connects): the same rule
    (no pending session), one Core query on a bare connection (no ORM session, which
    costs more than the query), nothing written."""
    if not token:
        return None
    return peek_from_row(
        settings, connection.execute(PEEK_SESSION, {"token_hash": token_hash(token)}).first()
    )


def peek_from_row(settings: Settings, row: Any) -> SessionPeek | None:
    """The live session in a row of PEEK_SESSION's columns (None if absent or not live):
    peek_session's rule, shared with the read that runs the query elsewhere
    (server.calls.connect_reads)."""
    if row is None or not _usable(settings, utcnow(), row, active=row.active, pending=False):
        return None
    return SessionPeek(row.id, row.user_id, row.name, row.last_seen_at)


def needs_touch(record: LoginSession | SessionPeek, now: datetime | None = None) -> bool:
    """Whether the session's last_seen_at is stale enough to be written again."""
    return (now or utcnow()) - record.last_seen_at > _TOUCH_EVERY


def touch_session(session: Session, login_session_id: int) -> None:
    """Mark a session used now (the write resolve_session(touch=False) left out)."""
    session.execute(
        update(LoginSession)
        .where(col(LoginSession.id) == login_session_id)
        .values(last_seen_at=utcnow())
    )


def end_session(session: Session, record: LoginSession, *, ip: str) -> None:
    """Logout: the row is ended, so the same cookie never works again."""
    record.ended_at = utcnow()
    session.add(record)
    audit.record(
        session,
        "auth.logout",
        actor_id=record.user_id,
        ip=ip,
        object_type="user",
        object_id=record.user_id,
    )


# --- visibility ----------------------------------------------------------------------


def visible_users(session: Session, viewer: User, organisation_id: int) -> list[User]:
    """Staff lists are private to their organisation (and to nobody else)."""
    if viewer.organisation_id != organisation_id:
        raise NotFound("organisation")
    return list(
        session.exec(
            select(User).where(User.organisation_id == organisation_id).order_by(col(User.name))
        ).all()
    )


def get_user_for(session: Session, viewer: User, user_id: int) -> User:
    """A user record, only for themself and colleagues of the same organisation."""
    user = session.get(User, user_id)
    if user is None or user.organisation_id != viewer.organisation_id:
        raise NotFound("user")
    return user


def set_locale(session: Session, user: User, locale: str) -> None:
    if locale not in LOCALES:
        raise AppError(
            "invalid_locale",
            "locale must be one of %(locales)s",
            422,
            params={"locales": ", ".join(LOCALES)},
        )
    user.locale = locale
    session.add(user)


def region_of(session: Session, organisation_id: int) -> Region | None:
    organisation = session.get(Organisation, organisation_id)
    return session.get(Region, organisation.region_id) if organisation else None


# --- administration ------------------------------------------------------------------

SPECIALTY_CODE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")


def set_active(session: Session, admin: User, user_id: int, active: bool, *, ip: str = "") -> User:
    """An administrator deactivates or reactivates a user of their own organisation.

    A deactivated user cannot log in, and their open sessions stop working at once
    (resolve_session refuses inactive users). Other organisations' users are absent.
    """
    user = session.get(User, user_id)
    if user is None or user.organisation_id != admin.organisation_id:
        raise NotFound("user")
    if user.id == admin.id and not active:
        raise AppError("self_deactivation", "you cannot deactivate your own account", 422)
    if user.active == active:
        return user
    user.active = active
    session.add(user)
    if not active:
        for record in session.exec(
            select(LoginSession).where(
                LoginSession.user_id == user.id, col(LoginSession.ended_at).is_(None)
            )
        ).all():
            record.ended_at = utcnow()
            session.add(record)
    audit.record(
        session,
        "user.reactivate" if active else "user.deactivate",
        actor_id=admin.id,
        ip=ip,
        object_type="user",
        object_id=user.id or "",
        organisation_id=user.organisation_id,
    )
    return user


def create_specialty(
    session: Session,
    *,
    code: str,
    name_ko: str,
    name_en: str,
    actor_id: int | None = None,
    organisation_id: int | None = None,
    ip: str = "",
) -> Specialty:
    """A new specialty (validated first: bad input writes nothing)."""
    code = code.strip().lower()
    name_ko, name_en = name_ko.strip(), name_en.strip()
    if not SPECIALTY_CODE.match(code):
        raise AppError(
            "invalid_code", "code: 2-40 lower-case letters, digits, - or _, starting a letter", 422
        )
    if not name_ko or not name_en or len(name_ko) > 100 or len(name_en) > 100:
        raise AppError("invalid_name", "both names are needed, at most 100 characters", 422)
    if session.exec(select(Specialty.id).where(Specialty.code == code)).first() is not None:
        raise AppError(
            "duplicate_code",
            "a specialty with code %(code)s already exists",
            409,
            params={"code": code},
        )
    specialty = Specialty(code=code, name_ko=name_ko, name_en=name_en)
    session.add(specialty)
    session.flush()
    audit.record(
        session,
        "specialty.create",
        actor_id=actor_id,
        ip=ip,
        object_type="specialty",
        object_id=specialty.id or "",
        organisation_id=organisation_id,
        detail={"code": code},
    )
    return specialty


# --- sessions a user can see and end -------------------------------------------------


def _live_filter(settings: Settings) -> tuple[Any, ...]:
    now = utcnow()
    return (
        col(LoginSession.ended_at).is_(None),
        col(LoginSession.last_seen_at) > now - timedelta(minutes=settings.session_idle_minutes),
        col(LoginSession.created_at) > now - timedelta(hours=settings.session_absolute_hours),
    )


def session_is_live(session: Session, settings: Settings, login_session_id: int) -> bool:
    """Whether this login session is still open (signaling checks join tokens with it)."""
    found = session.exec(
        select(LoginSession.id)
        .join(User, col(User.id) == LoginSession.user_id)
        .where(LoginSession.id == login_session_id, col(User.active).is_(True))
        .where(LoginSession.pending == "")
        .where(*_live_filter(settings))
    ).first()
    return found is not None


def active_sessions(session: Session, settings: Settings, user: User) -> list[LoginSession]:
    """The user's open sessions, most recently used first."""
    return list(
        session.exec(
            select(LoginSession)
            .where(LoginSession.user_id == user.id)
            .where(*_live_filter(settings))
            .order_by(col(LoginSession.last_seen_at).desc())
        ).all()
    )


def end_own_session(session: Session, user: User, login_session_id: int, *, ip: str) -> None:
    """A user ends one of their own sessions (another device); others' are absent."""
    record = session.get(LoginSession, login_session_id)
    if record is None or record.user_id != user.id or record.ended_at is not None:
        raise NotFound("session")
    record.ended_at = utcnow()
    session.add(record)
    audit.record(
        session,
        "auth.session_end",
        actor_id=user.id,
        ip=ip,
        object_type="session",
        object_id=record.id or "",
        organisation_id=user.organisation_id,
    )


def _end_all(session: Session, user_id: int, *, besides: int | None = None) -> list[int]:
    ended = []
    for record in session.exec(
        select(LoginSession).where(
            LoginSession.user_id == user_id, col(LoginSession.ended_at).is_(None)
        )
    ).all():
        if record.id == besides:
            continue
        record.ended_at = utcnow()
        session.add(record)
        ended.append(record.id or 0)
    return ended


def revoke_sessions(session: Session, admin: User, user_id: int, *, ip: str = "") -> list[int]:
    """An administrator ends every session of a user of their own organisation."""
    user = session.get(User, user_id)
    if user is None or user.organisation_id != admin.organisation_id:
        raise NotFound("user")
    ended = _end_all(session, user_id)
    audit.record(
        session,
        "auth.sessions_revoke",
        actor_id=admin.id,
        ip=ip,
        object_type="user",
        object_id=user_id,
        organisation_id=user.organisation_id,
        detail={"sessions": len(ended)},
    )
    return ended


def change_password(
    session: Session,
    user: User,
    *,
    current: str,
    new: str,
    keep_session_id: int | None,
    ip: str = "",
) -> list[int]:
    """Check the current password and the new one; every other session ends."""
    if not verify_password(user.password_hash, current):
        raise AppError("wrong_password", "the current password is wrong", 422, field="current")
    problem = password_problem(new, (user.email, user.name))
    if problem:
        raise AppError("weak_password", problem, 422, field="new")
    user.password_hash = hash_password(new)
    session.add(user)
    ended = _end_all(session, user.id or 0, besides=keep_session_id)
    audit.record(
        session,
        "auth.password_change",
        actor_id=user.id,
        ip=ip,
        object_type="user",
        object_id=user.id or "",
        organisation_id=user.organisation_id,
        detail={"sessions_ended": len(ended)},
    )
    return ended
