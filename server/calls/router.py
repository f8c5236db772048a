"""Calls API: join tokens, guest invitations, ICE servers, call history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from server.accounts.deps import CurrentUser, SettingsDep, client_ip
from server.calls import service
from server.calls.schemas import InvitationIn, RedeemIn
from server.db import SessionDep

router = APIRouter(tags=["calls"])


@router.post("/api/consults/{public_id}/join-token")
def join_token(
    public_id: str, request: Request, session: SessionDep, settings: SettingsDep, user: CurrentUser
) -> dict[str, Any]:
    """A short-lived token for a non-browser client to join this consult's call."""
    consult = service.consult_for_participant(session, user, public_id)
    token = service.issue_join_token(settings, request.app.state.secret_key, user, consult)
    return {"token": token, "room": consult.public_id, "expires_in": settings.join_token_seconds}


@router.post("/api/consults/{public_id}/invitations", status_code=201)
def invite_guest(
    public_id: str,
    body: InvitationIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
) -> dict[str, Any]:
    """A single-use, expiring invitation for a guest, who then waits in the lobby."""
    consult = service.consult_for_participant(session, user, public_id)
    created = service.create_invitation(
        session,
        settings,
        user,
        consult,
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
def consult_calls(public_id: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The consult's call sessions: participants, duration, quality summary."""
    consult = service.consult_for_participant(session, user, public_id)
    return {"calls": service.calls_of(session, consult)}
