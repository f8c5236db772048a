"""Signaling against an attacker: a resume token alone (or with another person's
credentials) resumes nothing; a guest admitted into a full call is refused cleanly and
the admitter is told; deeply nested JSON gets an error frame, not a crash."""

from __future__ import annotations

import asyncio

from sqlmodel import Session

from server.accounts.models import Organisation, Role
from signaling import protocol as p
from signaling import tokens
from tests.conftest import TEST_SECRET
from tests.factories import make_user
from tests.signaling.client import close_code, no_frame, open_ws, recv, recv_type, send
from tests.signaling.factories import make_call, session_cookie


async def test_a_resume_token_works_only_for_the_same_person(live_server: str, db: Session) -> None:
    call = make_call(db)
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    await recv_type(gp, "welcome")
    sp_cookie = session_cookie(db, call.specialist)
    sp = await open_ws(live_server, cookie=sp_cookie)
    await send(sp, type="join", room=call.room)
    first = await recv_type(sp, "welcome")
    sp.transport.abort()
    await asyncio.sleep(0.3)
    # The token alone, without credentials: refused.
    thief = await open_ws(live_server, origin=None)
    await send(thief, type="join", room=call.room, resume_token=first["resume_token"])
    assert await close_code(thief) == 4403
    # With another participant's credentials: a join of their own, never the resume.
    organisation = db.get(Organisation, call.gp.organisation_id)
    colleague = make_user(db, Role.GP, organisation=organisation)
    other = await open_ws(live_server, cookie=session_cookie(db, colleague))
    await send(other, type="join", room=call.room, resume_token=first["resume_token"])
    joined = await recv_type(other, "welcome")
    assert joined["resumed"] is False and joined["peer_id"] != first["peer_id"]
    # The owner still resumes with it.
    back = await open_ws(live_server, cookie=sp_cookie)
    await send(back, type="join", room=call.room, resume_token=first["resume_token"])
    again = await recv_type(back, "welcome")
    assert again["resumed"] is True and again["peer_id"] == first["peer_id"]


async def test_a_guest_admitted_into_a_full_call_is_refused_and_the_admitter_told(
    live_server: str, db: Session
) -> None:
    call = make_call(db)
    organisation = db.get(Organisation, call.gp.organisation_id)
    colleagues = [make_user(db, Role.GP, organisation=organisation) for _ in range(2)]
    gp = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    await recv_type(gp, "welcome")
    token = tokens.sign_join(
        TEST_SECRET, {"r": call.room, "k": "guest:full", "n": "Interpreter", "t": "guest"}, 60
    )
    guest = await open_ws(live_server, origin=None)
    await send(guest, type="join", room=call.room, token=token)
    await recv_type(guest, "lobby")
    knock = await recv_type(gp, "knock")
    others = []
    for user in [call.specialist, *colleagues]:
        ws = await open_ws(live_server, cookie=session_cookie(db, user))
        await send(ws, type="join", room=call.room)
        await recv_type(ws, "welcome")
        others.append(ws)
    await send(gp, type="admit", peer=knock["peer"]["peer_id"])
    told = await recv_type(gp, "error")
    assert told["code"] == "room_full"
    # The guest is not let in (and no crash): it keeps waiting, and a deny closes it.
    assert await no_frame(guest, 0.5)
    await send(gp, type="deny", peer=knock["peer"]["peer_id"])
    assert await close_code(guest) == 4403


def test_deeply_nested_json_is_a_protocol_error() -> None:
    deep = "[" * 5000 + "]" * 5000
    frame = '{"type": "ping", "ts": 1, "x": ' + deep + "}"
    try:
        p.parse_client(frame)
    except p.ProtocolError as error:
        assert error.code == "bad_frame"
    else:
        raise AssertionError("accepted")


async def test_deeply_nested_json_on_the_socket_gets_an_error_frame(
    live_server: str, db: Session
) -> None:
    call = make_call(db)
    ws = await open_ws(live_server, cookie=session_cookie(db, call.gp))
    await send(ws, type="join", room=call.room)
    await recv_type(ws, "welcome")
    await ws.send('{"type": "ping", "ts": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}")
    frame = await recv(ws)
    assert frame["type"] == "error" and frame["code"] == "bad_frame"
    await send(ws, type="ping", ts=2)
    assert (await recv_type(ws, "pong"))["ts"] == 2
