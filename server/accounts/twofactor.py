"""Two-factor sign-in: TOTP (RFC 6238) with an authenticator app, and one-time recovery codes.

Specialists and administrators must enrol (settings.totp_required_roles); GPs may.
The enrolment QR code is drawn here as SVG (nothing remote, no script). Recovery
codes are shown once and kept by hash only; each opens one sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp
import qrcode
import qrcode.image.svg
from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from server.accounts.models import RecoveryCode, User
from server.audit import service as audit
from server.clock import utcnow
from server.errors import AppError

ISSUER = "Dari"
RECOVERY_CODES = 10


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").replace(" ", "").lower().encode()).hexdigest()


def provisioning_uri(user: User) -> str:
    assert user.totp_secret is not None
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The otpauth:// URI as an SVG QR code (markup to place inline in the page)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    svg: bytes = image.to_string()
    text = svg.decode()
    # Drop the XML declaration: the markup goes inside an HTML page.
    return text[text.index("<svg") :]


def start_enrolment(session: Session, user: User) -> str:
    """A new secret for a user not yet enrolled (or re-enrolling); in force once confirmed."""
    if user.totp_secret is None or user.totp_enabled_at is None:
        user.totp_secret = pyotp.random_base32()
        user.totp_last_step = None  # steps of the old secret say nothing of the new
        session.add(user)
        session.flush()
    return user.totp_secret


def matching_step(user: User, code: str) -> int | None:
    """The time step whose code this is (one step either side for clock drift), or None."""
    code = code.strip().replace(" ", "")
    if not user.totp_secret or not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(user.totp_secret)
    step = totp.timecode(utcnow())
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


def spend_code(session: Session, user: User, code: str) -> bool:
    """Accept a code once: its step must be later than the last one accepted.

    One conditional UPDATE, so two sign-ins racing with the same code cannot both
    win (RFC 6238 §5.2: the verifier must not accept the second attempt of an OTP).
    """
    step = matching_step(user, code)
    if step is None:
        return False
    result = session.execute(
        update(User)
        .where(
            col(User.id) == user.id,
            or_(col(User.totp_last_step).is_(None), col(User.totp_last_step) < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    user.totp_last_step = step
    return True


def confirm_enrolment(session: Session, user: User, code: str, *, ip: str = "") -> list[str]:
    """Check a first code from the app; two-factor is then on. The recovery codes, once."""
    if user.totp_secret is None:
        raise AppError("totp_not_started", "start the set-up first", 409)
    if not spend_code(session, user, code):
        raise AppError("invalid_otp", "that code is not right; try the next one", 422, field="code")
    user.totp_enabled_at = utcnow()
    session.add(user)
    for old in session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all():
        session.delete(old)
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = secrets.token_hex(5)
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user.id or 0, code_hash=_code_hash(raw)))
    audit.record(
        session,
        "auth.totp_enrol",
        actor_id=user.id,
        ip=ip,
        object_type="user",
        object_id=user.id or "",
        organisation_id=user.organisation_id,
    )
    session.flush()
    return codes


def use_recovery_code(session: Session, user: User, code: str) -> bool:
    """Spend one unused recovery code; False if it is not one of the user's."""
    wanted = _code_hash(code)
    for row in session.exec(
        select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, col(RecoveryCode.used_at).is_(None)
        )
    ).all():
        if hmac.compare_digest(row.code_hash, wanted):
            row.used_at = utcnow()
            session.add(row)
            return True
    return False


def second_factor_ok(session: Session, user: User, code: str) -> bool:
    """An authenticator code not used before, or else an unused recovery code."""
    if spend_code(session, user, code):
        return True
    cleaned = code.strip()
    return 8 <= len(cleaned) <= 16 and use_recovery_code(session, user, cleaned)
