"""Calls API: join tokens, guest invitations, ICE servers, call history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from server.accounts.deps import CurrentUser, SettingsDep, client_ip
from server.calls import service
from server.calls.schemas import InvitationIn, RedeemIn
from server.consults.deps import ConsultForParticipant
from server.db import SessionDep

router = APIRouter(tags=["calls"])


@router.post("/api/consults/{public_id}/join-token")
def join_token(
    viewing: ConsultForParticipant, request: Request, settings: SettingsDep
) -> dict[str, Any]:
    """A short-lived token for a non-browser client to join this consult's call."""
    consult = viewing.consult
    auth = getattr(request.state, "auth", None)
    login_session_id = auth[1].id if auth else None
    token = service.issue_join_token(
        settings, request.app.state.secret_key, viewing.user, consult, login_session_id
    )
    return {"token": token, "room": consult.public_id, "expires_in": settings.join_token_seconds}


@router.post("/api/consults/{public_id}/invitations", status_code=201)
def invite_guest(
    body: InvitationIn,
    viewing: ConsultForParticipant,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """A single-use, expiring invitation for a guest, who then waits in the lobby."""
    created = service.create_invitation(
        session,
        settings,
        viewing.user,
        viewing.consult,
        guest_name=body.guest_name,
        minutes=body.minutes,
        ip=client_ip(request),
    )
    return {
        "token": created.token,
        "expires_at": created.invitation.expires_at.isoformat(),
        "url": f"/calls/guest#{created.token}",
    }


@router.post("/api/invitations/redeem")
def redeem(
    body: RedeemIn, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Spend an invitation for a join token (guest: lobby only)."""
    join, room = service.redeem_invitation(
        session, settings, request.app.state.secret_key, body.token, ip=client_ip(request)
    )
    return {"join_token": join, "room": room}


@router.get("/api/calls/ice-servers")
def ice_servers(settings: SettingsDep, user: CurrentUser) -> dict[str, Any]:
    """The STUN/TURN servers to use, with fresh TURN credentials."""
    return {"ice_servers": service.ice_servers(settings, service.user_key(user.id or 0))}


@router.get("/api/consults/{public_id}/calls")
def consult_calls(viewing: ConsultForParticipant, session: SessionDep) -> dict[str, Any]:
    """The consult's call sessions: participants, duration, quality summary."""
    return {"calls": service.calls_of(session, viewing.consult)}
