"""Rooms through the real WebSocket endpoint of a running server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from websockets.exceptions import ConnectionClosed

from server.accounts.models import Organisation, OrgKind, Role
from tests.conftest import ROOT, start_server, stop_server
from tests.factories import login, make_organisation, make_user
from tests.signaling.client import close_code, no_frame, open_ws, recv, recv_type, send
from tests.signaling.factories import join_token, make_call, make_consult, session_cookie


async def test_two_participants_meet_and_relay(live_server: str, db: Session) -> None:
    call = make_call(db)
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    welcome_gp = await recv_type(gp, "welcome")
    assert welcome_gp["peers"] == [] and welcome_gp["resume_token"]
    assert welcome_gp["max_peers"] == 4 and welcome_gp["ice_servers"] == []

    sp = await open_ws(live_server, cookie=session_cookie(db, call.specialist))
    await send(sp, type="join", room=call.room)
    welcome_sp = await recv_type(sp, "welcome")
    assert [peer["peer_id"] for peer in welcome_sp["peers"]] == [welcome_gp["peer_id"]]
    # The newcomer is polite towards the peer already there; that one is impolite.
    assert welcome_sp["polite"] is True and welcome_sp["peers"][0]["offer"] == "any"
    joined = await recv_type(gp, "peer-joined")
    assert joined["peer"]["peer_id"] == welcome_sp["peer_id"]
    assert joined["peer"]["polite"] is False
    assert joined["peer"]["name"] == call.specialist.name

    await send(sp, type="offer", to=welcome_gp["peer_id"], sdp="v=0 offer")
    offer = await recv_type(gp, "offer")
    assert offer == {"v": 1, "type": "offer", "from": welcome_sp["peer_id"], "sdp": "v=0 offer"}
    await send(gp, type="answer", to=welcome_sp["peer_id"], sdp="v=0 answer")
    assert (await recv_type(sp, "answer"))["sdp"] == "v=0 answer"
    candidate = {"candidate": "candidate:1 1 udp 2122 10.0.0.2 5000 typ host", "sdpMid": "0"}
    await send(sp, type="candidate", to=welcome_gp["peer_id"], candidate=candidate)
    got = await recv_type(gp, "candidate")
    assert got["candidate"]["candidate"] == candidate["candidate"]
    await send(sp, type="end-of-candidates", to=welcome_gp["peer_id"])
    assert (await recv_type(gp, "end-of-candidates"))["from"] == welcome_sp["peer_id"]
    await send(gp, type="chat", text="안녕하세요")
    chat = await recv_type(sp, "chat")
    assert chat["text"] == "안녕하세요" and chat["from"] == welcome_gp["peer_id"]
    await send(sp, type="ping", ts=5)
    assert (await recv_type(sp, "pong"))["ts"] == 5

    await send(sp, type="leave")
    left = await recv_type(gp, "peer-left")
    assert left == {"v": 1, "type": "peer-left", "peer_id": welcome_sp["peer_id"], "reason": "left"}
    assert await close_code(sp) == 1000
    await gp.close()


async def test_strangers_are_refused_with_4403(live_server: str, db: Session) -> None:
    call = make_call(db)
    other_clinic_gp = make_user(db, Role.GP)
    other_specialist = make_user(db, Role.SPECIALIST)
    admin = make_user(db, Role.ADMIN, organisation=make_organisation(db, kind=OrgKind.HOSPITAL))
    for user in (other_clinic_gp, other_specialist, admin):
        ws = await open_ws(live_server, cookie=session_cookie(db, user))
        await send(ws, type="join", room=call.room)
        assert await close_code(ws) == 4403
    # Unknown room, and no credentials at all: the same answer, nothing learnt.
    ws = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(ws, type="join", room="no-such-room")
    assert await close_code(ws) == 4403
    ws = await open_ws(live_server)
    await send(ws, type="join", room=call.room)
    assert await close_code(ws) == 4403


async def test_bad_origin_is_refused_even_with_a_good_cookie(live_server: str, db: Session) -> None:
    call = make_call(db)
    cookie = session_cookie(db, call.gp)
    ws = await open_ws(live_server, cookie=cookie, origin="https://evil.example")
    await send(ws, type="join", room=call.room)
    assert await close_code(ws) == 4403
    # Without an Origin (not a browser) a cookie is not enough: a join token is needed.
    ws = await open_ws(live_server, cookie=cookie, origin=None)
    await send(ws, type="join", room=call.room)
    assert await close_code(ws) == 4403


async def test_join_token_opens_only_its_room(live_server: str, db: Session) -> None:
    call = make_call(db)
    other = make_call(db)
    ws = await open_ws(live_server, origin=None)
    await send(ws, type="join", room=other.room, token=join_token(call.gp, call.room))
    assert await close_code(ws) == 4403
    ws = await open_ws(live_server, origin=None)
    await send(ws, type="join", room=call.room, token=join_token(call.gp, call.room, ttl=-5))
    assert await close_code(ws) == 4403
    ws = await open_ws(live_server, origin=None)
    await send(ws, type="join", room=call.room, token=join_token(call.gp, call.room))
    assert (await recv_type(ws, "welcome"))["room"] == call.room
    await ws.close()


async def test_bad_input_gets_error_frames_and_the_room_carries_on(
    live_server: str, db: Session
) -> None:
    call = make_call(db)
    elsewhere = make_call(db)
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    await recv_type(gp, "welcome")
    other = await open_ws(live_server, cookie=session_cookie(db, elsewhere.gp))
    await send(other, type="join", room=elsewhere.room)
    other_peer = (await recv_type(other, "welcome"))["peer_id"]

    await gp.send("{not json")
    assert (await recv(gp))["code"] == "bad_frame"
    await send(gp, type="teleport")
    assert (await recv(gp))["code"] == "bad_frame"
    await send(gp, type="ping", v=7)
    assert (await recv(gp))["code"] == "unsupported_version"
    # A peer of another room is unknown here, and hears nothing.
    await send(gp, type="offer", to=other_peer, sdp="v=0 sneaky")
    assert (await recv(gp))["code"] == "unknown_peer"
    assert await no_frame(other)
    await send(gp, type="ping")
    assert (await recv(gp))["type"] == "pong"

    await gp.send(json.dumps({"type": "chat", "text": "x" * (65 * 1024)}))
    assert await close_code(gp) == 1009
    # The other room is unaffected.
    await send(other, type="ping")
    assert (await recv(other))["type"] == "pong"
    await other.close()


async def test_flood_is_rate_limited_then_closed(live_server: str, db: Session) -> None:
    call = make_call(db)
    ws = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(ws, type="join", room=call.room)
    await recv_type(ws, "welcome")
    frame = json.dumps({"type": "ping"})
    try:
        for _ in range(400):
            await ws.send(frame)
    except ConnectionClosed:  # closed by the server mid-flood: what this test wants
        pass
    codes = []
    try:
        async with asyncio.timeout(10):
            while True:
                codes.append(json.loads(await ws.recv()).get("code"))
    except (ConnectionClosed, TimeoutError):  # read up to the close (or give up)
        pass
    assert "rate_limited" in codes
    assert ws.close_code == 1008


async def test_first_frame_must_be_join(live_server: str, db: Session) -> None:
    ws = await open_ws(live_server)
    await send(ws, type="offer", to="p_x", sdp="v=0")
    assert await close_code(ws) == 4400


async def test_resume_keeps_peer_id_and_asks_for_ice_restart(live_server: str, db: Session) -> None:
    call = make_call(db)
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    gp_welcome = await recv_type(gp, "welcome")
    sp_cookie = session_cookie(db, call.specialist)
    sp = await open_ws(live_server, cookie=sp_cookie)
    await send(sp, type="join", room=call.room)
    first = await recv_type(sp, "welcome")
    await recv_type(gp, "peer-joined")

    # The link drops (no leave frame) and comes back within the grace period.
    sp.transport.abort()
    await asyncio.sleep(0.3)
    sp2 = await open_ws(live_server, cookie=sp_cookie)
    await send(sp2, type="join", room=call.room, resume_token=first["resume_token"])
    again = await recv_type(sp2, "welcome")
    assert again["resumed"] is True and again["peer_id"] == first["peer_id"]
    assert again["resume_token"] != first["resume_token"]
    assert [peer["peer_id"] for peer in again["peers"]] == [gp_welcome["peer_id"]]
    # The room heard that it was away (reconnecting), then that it is back.
    away = await recv(gp)
    assert away["type"] == "peer-away" and away["peer_id"] == first["peer_id"]
    restart = await recv(gp)
    assert restart["type"] == "ice-restart" and restart["from"] == first["peer_id"]
    assert restart["reason"] == "reconnected"
    assert await no_frame(gp)  # no peer-left, no peer-joined
    # A resume token is single use.
    sp3 = await open_ws(live_server, origin=None)
    await send(sp3, type="join", room=call.room, resume_token=first["resume_token"])
    assert await close_code(sp3) == 4403
    await sp2.close()
    await gp.close()


async def test_second_tab_replaces_the_first(live_server: str, db: Session) -> None:
    call = make_call(db)
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    gp_id = (await recv_type(gp, "welcome"))["peer_id"]
    cookie = session_cookie(db, call.specialist)
    tab1 = await open_ws(live_server, cookie=cookie)
    await send(tab1, type="join", room=call.room)
    old = await recv_type(tab1, "welcome")
    await recv_type(gp, "peer-joined")
    tab2 = await open_ws(live_server, cookie=cookie)
    await send(tab2, type="join", room=call.room)
    new = await recv_type(tab2, "welcome")
    assert new["peer_id"] != old["peer_id"]
    assert [peer["peer_id"] for peer in new["peers"]] == [gp_id]
    assert await close_code(tab1) == 4409
    left = await recv_type(gp, "peer-left")
    assert left["peer_id"] == old["peer_id"] and left["reason"] == "replaced"
    assert (await recv_type(gp, "peer-joined"))["peer"]["peer_id"] == new["peer_id"]
    await tab2.close()
    await gp.close()


async def test_room_holds_at_most_four(live_server: str, db: Session) -> None:
    call = make_call(db)
    organisation = db.get(Organisation, call.gp.organisation_id)
    sockets = []
    colleagues = [make_user(db, Role.GP, organisation=organisation) for _ in range(3)]
    for user in [call.gp, call.specialist, *colleagues]:
        ws = await open_ws(live_server, cookie=session_cookie(db, user))
        await send(ws, type="join", room=call.room)
        sockets.append(ws)
        if len(sockets) <= 4:
            assert (await recv_type(ws, "welcome"))["type"] == "welcome"
    frame = await recv(sockets[4])
    assert frame["code"] == "room_full"
    assert await close_code(sockets[4]) == 4429
    for ws in sockets[:4]:
        await ws.close()


async def test_guest_waits_in_lobby_until_admitted(live_server: str, db: Session) -> None:
    from signaling import tokens
    from tests.conftest import TEST_SECRET

    call = make_call(db)
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    gp_id = (await recv_type(gp, "welcome"))["peer_id"]
    guest_token = tokens.sign_join(
        TEST_SECRET, {"r": call.room, "k": "guest:test", "n": "Interpreter", "t": "guest"}, 60
    )
    guest = await open_ws(live_server, origin=None)
    await send(guest, type="join", room=call.room, token=guest_token)
    assert (await recv(guest))["type"] == "lobby"
    knock = await recv_type(gp, "knock")
    assert knock["peer"]["name"] == "Interpreter" and knock["peer"]["kind"] == "guest"
    # In the lobby, a guest cannot reach anyone.
    await send(guest, type="offer", to=gp_id, sdp="v=0")
    assert (await recv(guest))["code"] == "not_allowed"
    assert await no_frame(gp)
    await send(gp, type="admit", peer=knock["peer"]["peer_id"])
    welcome = await recv_type(guest, "welcome")
    assert [peer["peer_id"] for peer in welcome["peers"]] == [gp_id]
    assert (await recv_type(gp, "peer-joined"))["peer"]["kind"] == "guest"
    # A guest may not admit anyone.
    await send(guest, type="admit", peer=gp_id)
    assert (await recv(guest))["code"] == "not_allowed"
    await guest.close()
    await gp.close()


async def test_guest_denied_is_closed(live_server: str, db: Session) -> None:
    from signaling import tokens
    from tests.conftest import TEST_SECRET

    call = make_call(db)
    consult = make_consult(db, call.gp)
    assert consult.public_id != call.room
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    await recv_type(gp, "welcome")
    token = tokens.sign_join(
        TEST_SECRET, {"r": call.room, "k": "guest:deny", "n": "Someone", "t": "guest"}, 60
    )
    guest = await open_ws(live_server, origin=None)
    await send(guest, type="join", room=call.room, token=token)
    await recv_type(guest, "lobby")
    knock = await recv_type(gp, "knock")
    await send(gp, type="deny", peer=knock["peer"]["peer_id"])
    assert await close_code(guest) == 4403
    await gp.close()


async def test_call_session_is_recorded_from_joins_and_leaves(
    live_server: str, db: Session
) -> None:
    from sqlmodel import select

    from server.calls.models import CallParticipant, CallSession

    call = make_call(db)
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    await recv_type(gp, "welcome")
    sp = await open_ws(live_server, cookie=session_cookie(db, call.specialist))
    await send(sp, type="join", room=call.room)
    await recv_type(sp, "welcome")
    await send(sp, type="stats", bitrate_kbps=650, rtt_ms=45, loss_pct=0.2)
    await send(sp, type="leave")
    await recv_type(gp, "peer-left")
    await send(gp, type="leave")
    await close_code(gp)
    ended = None
    async with asyncio.timeout(10):
        while ended is None or ended.ended_at is None:
            await asyncio.sleep(0.1)
            db.expire_all()
            ended = db.exec(
                select(CallSession).where(CallSession.consult_id == call.consult.id)
            ).first()
    participants = db.exec(
        select(CallParticipant).where(CallParticipant.call_session_id == ended.id)
    ).all()
    assert {p.user_id for p in participants} == {call.gp.id, call.specialist.id}
    assert ended.median_bitrate_kbps == 650 and ended.duration_seconds is not None


@pytest.mark.slow  # a server of its own
async def test_configured_origin_is_accepted(database_url: str, var_dir: Path, db: Session) -> None:
    call = make_call(db)
    process, base = start_server(
        database_url,
        var_dir,
        extra_env={"DARI_ALLOWED_ORIGINS": '["https://clinic.example.org"]'},
    )
    try:
        ws = await open_ws(
            base, cookie=session_cookie(db, call.gp), origin="https://clinic.example.org"
        )
        await send(ws, type="join", room=call.room)
        assert (await recv_type(ws, "welcome"))["room"] == call.room
        await ws.close()
        ws = await open_ws(
            base, cookie=session_cookie(db, call.gp), origin="https://other.example.org"
        )
        await send(ws, type="join", room=call.room)
        assert await close_code(ws) == 4403
    finally:
        stop_server(process)


def _spawn_signaling(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "server.cli", "signaling", "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)


@pytest.mark.slow  # a process of its own
async def test_dari_signaling_command_serves_alone(
    database_url: str, var_dir: Path, db: Session
) -> None:
    """`dari signaling` runs the endpoints on a port of their own."""
    from tests.conftest import TEST_SECRET, free_port

    call = make_call(db)
    port = free_port()
    env = {
        **os.environ,
        "DARI_DATABASE_URL": database_url,
        "DARI_SECRET_KEY": TEST_SECRET,
        "DARI_VAR_DIR": str(var_dir),
    }
    process = _spawn_signaling(port, env)
    try:
        base = f"http://127.0.0.1:{port}"
        ws = None
        async with asyncio.timeout(30):
            while ws is None:
                try:
                    ws = await open_ws(base, origin=None)
                except OSError:
                    await asyncio.sleep(0.2)
        await send(ws, type="join", room=call.room, token=join_token(call.gp, call.room))
        assert (await recv_type(ws, "welcome"))["room"] == call.room
        await ws.close()
        # The cookie path works too: the standalone service checks sessions in the database.
        ws = await open_ws(base, cookie=session_cookie(db, call.specialist))
        await send(ws, type="join", room=call.room)
        assert (await recv_type(ws, "welcome"))["room"] == call.room
        await ws.close()
    finally:
        stop_server(process)


async def test_invited_guest_joins_through_the_lobby(
    live_server: str, db: Session, client: TestClient, other_client: TestClient
) -> None:
    call = make_call(db)
    login(client, call.gp)
    invite = client.post(
        f"/api/consults/{call.room}/invitations", json={"guest_name": "Interpreter Park"}
    ).json()["token"]
    other_client.headers["X-CSRF-Token"] = other_client.get("/api/auth/csrf").json()["csrf_token"]
    redeemed = other_client.post("/api/invitations/redeem", json={"token": invite}).json()

    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    await recv_type(gp, "welcome")
    guest = await open_ws(live_server)  # a browser on our page, no session cookie
    await send(guest, type="join", room=redeemed["room"], token=redeemed["join_token"])
    assert (await recv(guest))["type"] == "lobby"
    knock = await recv_type(gp, "knock")
    assert knock["peer"]["name"] == "Interpreter Park"
    await send(gp, type="admit", peer=knock["peer"]["peer_id"])
    assert (await recv_type(guest, "welcome"))["peers"][0]["kind"] == "user"
    assert (await recv_type(gp, "peer-joined"))["peer"]["name"] == "Interpreter Park"
