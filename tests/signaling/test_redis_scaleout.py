"""Two server processes sharing Redis: presence, relay and a whole aiortc call across them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from signaling.rtcpeer import RtcPeer
from tests.conftest import start_server, stop_server
from tests.signaling.client import close_code, open_ws, recv_type, send
from tests.signaling.factories import join_token, make_call, session_cookie

REDIS_URL = "redis://127.0.0.1:6379/5"
pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_servers(database_url: str, var_dir: Path) -> Iterator[tuple[str, str]]:
    env = {"DARI_REDIS_URL": REDIS_URL}
    first, base1 = start_server(database_url, var_dir, extra_env=env)
    try:
        second, base2 = start_server(database_url, var_dir, extra_env=env)
    except Exception:
        stop_server(first)
        raise
    yield base1, base2
    stop_server(second)
    stop_server(first)


async def test_peers_on_two_processes_see_and_reach_each_other(
    two_servers: tuple[str, str], db: Session
) -> None:
    base1, base2 = two_servers
    call = make_call(db)
    gp = await open_ws(base1, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    gp_id = (await recv_type(gp, "welcome"))["peer_id"]
    sp = await open_ws(base2, cookie=session_cookie(db, call.specialist))
    await send(sp, type="join", room=call.room)
    welcome = await recv_type(sp, "welcome")
    assert [peer["peer_id"] for peer in welcome["peers"]] == [gp_id]
    assert (await recv_type(gp, "peer-joined"))["peer"]["peer_id"] == welcome["peer_id"]
    await send(sp, type="offer", to=gp_id, sdp="v=0 across")
    offer = await recv_type(gp, "offer")
    assert offer["sdp"] == "v=0 across" and offer["from"] == welcome["peer_id"]
    await send(gp, type="chat", text="hello from process one")
    assert (await recv_type(sp, "chat"))["text"] == "hello from process one"
    await send(sp, type="leave")
    left = await recv_type(gp, "peer-left")
    assert left["peer_id"] == welcome["peer_id"]
    await gp.close()


async def test_second_tab_on_another_process_replaces_the_first(
    two_servers: tuple[str, str], db: Session
) -> None:
    base1, base2 = two_servers
    call = make_call(db)
    cookie = session_cookie(db, call.gp)
    tab1 = await open_ws(base1, cookie=cookie)
    await send(tab1, type="join", room=call.room)
    await recv_type(tab1, "welcome")
    tab2 = await open_ws(base2, cookie=cookie)
    await send(tab2, type="join", room=call.room)
    assert (await recv_type(tab2, "welcome"))["peers"] == []
    assert await close_code(tab1) == 4409
    await tab2.close()


async def test_aiortc_call_across_two_processes(two_servers: tuple[str, str], db: Session) -> None:
    base1, base2 = two_servers
    call = make_call(db)
    url1 = base1.replace("http://", "ws://") + "/ws/room"
    url2 = base2.replace("http://", "ws://") + "/ws/room"
    gp = RtcPeer(url1, call.room, token=join_token(call.gp, call.room))
    sp = RtcPeer(url2, call.room, token=join_token(call.specialist, call.room))
    try:
        await gp.join()
        await sp.join()
        await asyncio.gather(gp.wait_media(), sp.wait_media())
        assert gp.received.video >= 5 and sp.received.audio >= 5
    finally:
        await asyncio.gather(gp.close(), sp.close())


async def test_resume_on_the_other_process_keeps_the_peer_id(
    two_servers: tuple[str, str], db: Session
) -> None:
    base1, base2 = two_servers
    call = make_call(db)
    gp = await open_ws(base1, cookie=session_cookie(db, call.gp))
    await send(gp, type="join", room=call.room)
    await recv_type(gp, "welcome")
    sp_cookie = session_cookie(db, call.specialist)
    sp = await open_ws(base1, cookie=sp_cookie)
    await send(sp, type="join", room=call.room)
    first = await recv_type(sp, "welcome")
    await recv_type(gp, "peer-joined")
    sp.transport.abort()
    await asyncio.sleep(0.3)
    # The load balancer sends the returning client to the other process.
    back = await open_ws(base2, cookie=sp_cookie)
    await send(back, type="join", room=call.room, resume_token=first["resume_token"])
    again = await recv_type(back, "welcome")
    assert again["resumed"] is True and again["peer_id"] == first["peer_id"]
    restart = await recv_type(gp, "ice-restart")
    assert restart["from"] == first["peer_id"]
    # Relay works both ways with the peer now held by process two.
    await send(gp, type="chat", text="still there?")
    assert (await recv_type(back, "chat"))["text"] == "still there?"
    gp_id = again["peers"][0]["peer_id"]
    await send(back, type="offer", to=gp_id, sdp="v=0 after resume")
    offer = await recv_type(gp, "offer")
    assert offer["from"] == first["peer_id"] and offer["sdp"] == "v=0 after resume"
