"""Calls API and rules: join tokens, guest invitations, ICE servers, call sessions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from server import migrate
from server.accounts.models import Role
from server.audit.models import AuditEvent
from server.calls import service as calls
from server.calls.models import CallInvitation, CallParticipant, CallSession
from server.clock import utcnow
from server.db import engine_for
from signaling import tokens
from tests.conftest import TEST_SECRET, make_settings
from tests.factories import login, make_user
from tests.signaling.factories import make_call


def test_participant_gets_a_join_token_for_the_room(client: TestClient, db: Session) -> None:
    call = make_call(db)
    login(client, call.specialist)
    response = client.post(f"/api/consults/{call.room}/join-token")
    assert response.status_code == 200, response.text
    body = response.json()
    claims = tokens.verify_join(TEST_SECRET, body["token"])
    assert claims is not None and claims["r"] == call.room and claims["u"] == call.specialist.id
    assert body["room"] == call.room and body["expires_in"] == 120


def test_strangers_get_404_for_tokens_invitations_and_calls(
    client: TestClient, db: Session
) -> None:
    call = make_call(db)
    login(client, make_user(db, Role.GP))
    assert client.post(f"/api/consults/{call.room}/join-token").status_code == 404
    response = client.post(f"/api/consults/{call.room}/invitations", json={"guest_name": "X"})
    assert response.status_code == 404
    assert client.get(f"/api/consults/{call.room}/calls").status_code == 404
    assert client.post("/api/consults/no-such-room/join-token").status_code == 404


def test_join_token_needs_login(client: TestClient, db: Session) -> None:
    call = make_call(db)
    csrf = client.get("/api/auth/csrf").json()["csrf_token"]
    response = client.post(f"/api/consults/{call.room}/join-token", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 401


def test_invitation_is_single_use(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    call = make_call(db)
    login(client, call.gp)
    response = client.post(
        f"/api/consults/{call.room}/invitations", json={"guest_name": "통역사 Lee", "minutes": 15}
    )
    assert response.status_code == 201, response.text
    invite = response.json()["token"]
    stored = db.exec(
        select(CallInvitation).where(CallInvitation.consult_id == call.consult.id)
    ).one()
    assert stored.token_hash != invite  # only the hash is kept
    assert timedelta(minutes=14) < stored.expires_at - utcnow() <= timedelta(minutes=15)

    csrf = other_client.get("/api/auth/csrf").json()["csrf_token"]
    other_client.headers["X-CSRF-Token"] = csrf
    redeemed = other_client.post("/api/invitations/redeem", json={"token": invite})
    assert redeemed.status_code == 200, redeemed.text
    claims = tokens.verify_join(TEST_SECRET, redeemed.json()["join_token"])
    assert claims is not None and claims["t"] == "guest" and claims["r"] == call.room
    assert claims["n"] == "통역사 Lee"
    again = other_client.post("/api/invitations/redeem", json={"token": invite})
    assert again.status_code == 404


def test_expired_invitation_is_refused(client: TestClient, db: Session) -> None:
    call = make_call(db)
    login(client, call.gp)
    invite = client.post(
        f"/api/consults/{call.room}/invitations", json={"guest_name": "Kim"}
    ).json()["token"]
    stored = db.exec(
        select(CallInvitation).where(CallInvitation.consult_id == call.consult.id)
    ).one()
    stored.expires_at = utcnow() - timedelta(seconds=1)
    db.add(stored)
    db.commit()
    assert client.post("/api/invitations/redeem", json={"token": invite}).status_code == 404


def test_bad_invitation_input_is_422_and_writes_nothing(client: TestClient, db: Session) -> None:
    call = make_call(db)
    login(client, call.gp)
    for body in ({"guest_name": ""}, {"guest_name": "A", "minutes": 0}, {"name": "A"}):
        response = client.post(f"/api/consults/{call.room}/invitations", json=body)
        assert response.status_code == 422, body
    count = db.exec(
        select(CallInvitation).where(CallInvitation.consult_id == call.consult.id)
    ).all()
    assert count == []


def test_ice_servers_mint_turn_credentials(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        stun_urls=["stun:turn.example.org:3478"],
        turn_urls=["turn:turn.example.org:3478?transport=udp"],
        turn_secret="coturn-secret",
        turn_ttl_seconds=600,
    )
    servers = calls.ice_servers(settings, "user:9")
    assert servers[0] == {"urls": ["stun:turn.example.org:3478"]}
    turn = servers[1]
    expiry, user = turn["username"].split(":", 1)
    assert user == "user:9" and int(expiry) > utcnow().timestamp() + 590
    assert (
        turn["credential"]
        == tokens.turn_credentials("coturn-secret", "user:9", 0, now=int(expiry))[1]
    )
    # No public STUN server by default.
    assert calls.ice_servers(make_settings(database_url, tmp_path), "user:9") == []


def test_ice_servers_route(client: TestClient, db: Session) -> None:
    call = make_call(db)
    login(client, call.gp)
    assert client.get("/api/calls/ice-servers").json() == {"ice_servers": []}


def test_call_session_records_participants_duration_and_quality(
    client: TestClient, db: Session, database_url: str
) -> None:
    call = make_call(db)
    engine = engine_for(database_url)
    with Session(engine) as session:
        calls.record_join(session, call.room, "p_gp", user_id=call.gp.id)
        calls.record_join(session, call.room, "p_sp", user_id=call.specialist.id)
        calls.record_join(
            session, call.room, "p_guest", user_id=None, guest_name="Lee", kind="guest"
        )
        assert calls.record_quality(
            session, call.room, "p_gp", bitrate_kbps=500, rtt_ms=80, loss_pct=1
        )
        calls.record_quality(session, call.room, "p_sp", bitrate_kbps=700, rtt_ms=40, loss_pct=0)
        session.commit()
    with Session(engine) as session:
        calls.record_leave(session, call.room, "p_guest", room_empty=False)
        calls.record_leave(session, call.room, "p_sp", room_empty=False)
        session.commit()
        open_call = session.exec(
            select(CallSession).where(CallSession.consult_id == call.consult.id)
        ).one()
        assert open_call.ended_at is None and open_call.peak_participants == 3
        calls.record_leave(session, call.room, "p_gp", room_empty=True)
        session.commit()
    ended = db.exec(select(CallSession).where(CallSession.consult_id == call.consult.id)).one()
    assert ended.ended_at is not None and ended.duration_seconds is not None
    assert ended.median_bitrate_kbps == 600 and ended.median_rtt_ms == 60
    participants = db.exec(
        select(CallParticipant).where(CallParticipant.call_session_id == ended.id)
    ).all()
    assert {p.peer_id for p in participants} == {"p_gp", "p_sp", "p_guest"}
    assert all(p.left_at is not None for p in participants)
    actions = db.exec(
        select(AuditEvent.action)
        .where(AuditEvent.object_id == call.room)
        .order_by(col(AuditEvent.seq))
    ).all()
    # The call moved the booked consult on (scheduled → in progress).
    assert actions == ["call.start", "consult.transition", "call.end"]

    login(client, call.gp)
    listed = client.get(f"/api/consults/{call.room}/calls").json()["calls"]
    assert len(listed) == 1 and len(listed[0]["participants"]) == 3
    assert listed[0]["quality"]["median_bitrate_kbps"] == 600


def test_migrations_match_the_models(database_url: str) -> None:
    migrate.check(database_url)
