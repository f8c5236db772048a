"""Rules for calls: tokens, invitations, ICE servers, call sessions (who may join: the
participant rule in server.consults.access)."""

from __future__ import annotations

import hashlib
import secrets
import statistics
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from server.accounts.models import User
from server.audit import service as audit
from server.calls.models import CallInvitation, CallParticipant, CallSession
from server.clock import utcnow
from server.consults import access, lifecycle
from server.consults.models import ConsultRequest, ConsultStatus
from server.errors import AppError, NotFound
from server.settings import Settings
from signaling import tokens

MAX_INVITE_MINUTES = 24 * 60


def user_key(user_id: int) -> str:
    return f"user:{user_id}"


def issue_join_token(
    settings: Settings,
    secret: str,
    user: User,
    consult: ConsultRequest,
    login_session_id: int | None = None,
) -> str:
    """A short-lived token that opens this consult's room for this user (non-browser clients).

    It names the login session it was issued in: once that session ends the token no
    longer opens anything, and the socket it opened is closed."""
    claims: dict[str, object] = {
        "r": consult.public_id,
        "k": user_key(user.id or 0),
        "u": user.id,
        "n": user.name,
        "t": "user",
    }
    if login_session_id is not None:
        claims["s"] = login_session_id
    return tokens.sign_join(secret, claims, settings.join_token_seconds)


def _invite_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewInvitation:
    token: str
    invitation: CallInvitation


def create_invitation(
    session: Session,
    settings: Settings,
    user: User,
    consult: ConsultRequest,
    *,
    guest_name: str,
    minutes: int | None = None,
    ip: str = "",
) -> NewInvitation:
    """A single-use invitation that expires; the guest still waits in the lobby."""
    name = guest_name.strip()
    if not name or len(name) > 80:
        raise AppError("invalid_guest_name", "a guest needs a name of 1 to 80 characters", 422)
    minutes = settings.guest_invite_minutes if minutes is None else minutes
    if not 1 <= minutes <= MAX_INVITE_MINUTES:
        raise AppError(
            "invalid_minutes",
            "an invitation lasts 1 to %(max)s minutes",
            422,
            params={"max": MAX_INVITE_MINUTES},
        )
    token = secrets.token_urlsafe(24)
    invitation = CallInvitation(
        consult_id=consult.id or 0,
        created_by_id=user.id or 0,
        token_hash=_invite_hash(token),
        guest_name=name,
        expires_at=utcnow() + timedelta(minutes=minutes),
    )
    session.add(invitation)
    session.flush()
    audit.record(
        session,
        "call.invite",
        actor_id=user.id,
        ip=ip,
        object_type="consult",
        object_id=consult.public_id,
        organisation_id=consult.organisation_id,
        detail={"invitation_id": invitation.id, "minutes": minutes},
    )
    return NewInvitation(token=token, invitation=invitation)


def redeem_invitation(
    session: Session, settings: Settings, secret: str, token: str, *, ip: str = ""
) -> tuple[str, str]:
    """Spend an invitation: (join token, room). Unknown, used and expired look the same."""
    invitation = session.exec(
        select(CallInvitation).where(CallInvitation.token_hash == _invite_hash(token))
    ).first()
    if invitation is None or invitation.used_at is not None or invitation.expires_at < utcnow():
        raise NotFound("invitation")
    consult = session.get(ConsultRequest, invitation.consult_id)
    if consult is None:
        raise NotFound("invitation")
    invitation.used_at = utcnow()
    session.add(invitation)
    audit.record(
        session,
        "call.invite_redeemed",
        actor_id=None,
        ip=ip,
        object_type="consult",
        object_id=consult.public_id,
        organisation_id=consult.organisation_id,
        detail={"invitation_id": invitation.id},
    )
    join = tokens.sign_join(
        secret,
        {
            "r": consult.public_id,
            "k": f"guest:{invitation.id}",
            "n": invitation.guest_name,
            "t": "guest",
        },
        # The guest may wait in the lobby; the token only has to last until the join frame.
        settings.join_token_seconds,
    )
    return join, consult.public_id


def ice_servers(settings: Settings, key: str) -> list[dict[str, Any]]:
    """STUN from settings; TURN with coturn REST API credentials minted now."""
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret:
        username, credential = tokens.turn_credentials(
            settings.turn_secret, key, settings.turn_ttl_seconds
        )
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return servers


# --- call sessions ------------------------------------------------------------------------


def _open_call(session: Session, consult_id: int) -> CallSession | None:
    return session.exec(
        select(CallSession)
        .where(CallSession.consult_id == consult_id, col(CallSession.ended_at).is_(None))
        .order_by(col(CallSession.id).desc())
    ).first()


def _present(session: Session, call: CallSession) -> list[CallParticipant]:
    return list(
        session.exec(
            select(CallParticipant).where(
                CallParticipant.call_session_id == call.id, col(CallParticipant.left_at).is_(None)
            )
        ).all()
    )


def record_join(
    session: Session,
    room: str,
    peer_id: str,
    *,
    user_id: int | None,
    guest_name: str = "",
    kind: str = "user",
) -> CallParticipant | None:
    """A peer entered the call: open the session if it is the first."""
    # Row lock on the consult: two processes recording the first two joins at once
    # must not open two sessions (PostgreSQL; SQLite writers are serialised anyway).
    consult = access.find_consult(session, room, lock=True)
    if consult is None:
        return None
    call = _open_call(session, consult.id or 0)
    if call is None:
        call = CallSession(consult_id=consult.id or 0)
        session.add(call)
        session.flush()
        audit.record(
            session,
            "call.start",
            actor_id=user_id,
            object_type="consult",
            object_id=consult.public_id,
            organisation_id=consult.organisation_id,
            detail={"call_session_id": call.id},
        )
        # The call moves the consult on: its timeline shows the call, and a booked (or
        # accepted) video consult is now in progress.
        lifecycle.record_call(session, consult, "call started")
        if consult.status in (ConsultStatus.ACCEPTED, ConsultStatus.SCHEDULED):
            lifecycle.transition(
                session, consult, ConsultStatus.IN_PROGRESS, actor=None, reason="call started"
            )
    participant = CallParticipant(
        call_session_id=call.id or 0,
        peer_id=peer_id,
        user_id=user_id,
        guest_name=guest_name[:80],
        kind=kind,
    )
    session.add(participant)
    session.flush()
    call.peak_participants = max(call.peak_participants, len(_present(session, call)))
    session.add(call)
    return participant


def _participant(
    session: Session, room: str, peer_id: str
) -> tuple[CallSession, CallParticipant] | None:
    consult = access.find_consult(session, room, lock=True)
    if consult is None:
        return None
    call = _open_call(session, consult.id or 0)
    if call is None:
        return None
    participant = session.exec(
        select(CallParticipant)
        .where(CallParticipant.call_session_id == call.id, CallParticipant.peer_id == peer_id)
        .order_by(col(CallParticipant.id).desc())
    ).first()
    return (call, participant) if participant is not None else None


def record_leave(session: Session, room: str, peer_id: str, *, room_empty: bool) -> None:
    """A peer left for good; the call ends when the room is empty."""
    found = _participant(session, room, peer_id)
    if found is None:
        return
    call, participant = found
    now = utcnow()
    if participant.left_at is None:
        participant.left_at = now
        session.add(participant)
        session.flush()
    if room_empty or not _present(session, call):
        end_call(session, call)


def end_call(session: Session, call: CallSession) -> None:
    now = utcnow()
    for participant in _present(session, call):
        participant.left_at = now
        session.add(participant)
    call.ended_at = now
    call.duration_seconds = max(0, int((now - call.started_at).total_seconds()))
    everyone = list(
        session.exec(
            select(CallParticipant).where(CallParticipant.call_session_id == call.id)
        ).all()
    )

    def median(values: list[float | None]) -> float | None:
        present = [value for value in values if value is not None]
        return statistics.median(present) if present else None

    call.median_bitrate_kbps = median([p.bitrate_kbps for p in everyone])
    call.median_rtt_ms = median([p.rtt_ms for p in everyone])
    call.median_loss_pct = median([p.loss_pct for p in everyone])
    session.add(call)
    consult = session.get(ConsultRequest, call.consult_id)
    if consult is not None:
        # The appointment was kept: it is completed (FHIR "fulfilled"); the consult stays
        # in progress (a dropped call may be joined again) until the report or "end call".
        lifecycle.record_call(session, consult, "call ended", f"{call.duration_seconds}")
        lifecycle.end_live_appointment(session, consult, None)
    audit.record(
        session,
        "call.end",
        actor_id=None,
        object_type="consult",
        object_id=consult.public_id if consult else "",
        organisation_id=consult.organisation_id if consult else None,
        detail={"call_session_id": call.id, "duration_seconds": call.duration_seconds},
    )


def record_quality(
    session: Session,
    room: str,
    peer_id: str,
    *,
    bitrate_kbps: float,
    rtt_ms: float,
    loss_pct: float,
) -> bool:
    found = _participant(session, room, peer_id)
    if found is None:
        return False
    _, participant = found
    participant.bitrate_kbps = bitrate_kbps
    participant.rtt_ms = rtt_ms
    participant.loss_pct = loss_pct
    session.add(participant)
    return True


def calls_of(session: Session, consult: ConsultRequest) -> list[dict[str, Any]]:
    """The consult's calls, newest first, with participants and quality (for pages/dashboards)."""
    calls = session.exec(
        select(CallSession)
        .where(CallSession.consult_id == consult.id)
        .order_by(col(CallSession.id).desc())
    ).all()
    result = []
    for call in calls:
        participants = session.exec(
            select(CallParticipant)
            .where(CallParticipant.call_session_id == call.id)
            .order_by(col(CallParticipant.id))
        ).all()
        result.append(
            {
                "id": call.id,
                "started_at": call.started_at.isoformat(),
                "ended_at": call.ended_at.isoformat() if call.ended_at else None,
                "duration_seconds": call.duration_seconds,
                "peak_participants": call.peak_participants,
                "quality": {
                    "median_bitrate_kbps": call.median_bitrate_kbps,
                    "median_rtt_ms": call.median_rtt_ms,
                    "median_loss_pct": call.median_loss_pct,
                },
                "participants": [
                    {
                        "user_id": p.user_id,
                        "guest_name": p.guest_name,
                        "kind": p.kind,
                        "joined_at": p.joined_at.isoformat(),
                        "left_at": p.left_at.isoformat() if p.left_at else None,
                        "bitrate_kbps": p.bitrate_kbps,
                        "rtt_ms": p.rtt_ms,
                        "loss_pct": p.loss_pct,
                    }
                    for p in participants
                ],
            }
        )
    return result
