"""Two aiortc peers call each other through the real signaling endpoint (trickle ICE)."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session

from signaling.rtcpeer import RtcPeer
from tests.signaling.factories import join_token, make_call

pytestmark = pytest.mark.slow


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/ws/room"


async def test_two_aiortc_peers_connect_and_exchange_media(live_server: str, db: Session) -> None:
    call = make_call(db)
    gp = RtcPeer(ws_url(live_server), call.room, token=join_token(call.gp, call.room))
    sp = RtcPeer(ws_url(live_server), call.room, token=join_token(call.specialist, call.room))
    try:
        await gp.join()
        welcome = await sp.join()
        # Both cannot roll back: the newcomer alone offers.
        assert welcome["peers"][0]["offer"] == "you"
        await asyncio.gather(gp.wait_media(), sp.wait_media())
        assert gp.received.video >= 5 and gp.received.audio >= 5
        assert sp.received.video >= 5 and sp.received.audio >= 5
        # Candidates really were trickled as separate frames.
        assert any(event["type"] == "candidate" for event in gp.events)
        assert any(event["type"] == "end-of-candidates" for event in gp.events)
    finally:
        await asyncio.gather(gp.close(), sp.close())


async def test_aiortc_call_recovers_after_a_signaling_drop(live_server: str, db: Session) -> None:
    call = make_call(db)
    gp = RtcPeer(ws_url(live_server), call.room, token=join_token(call.gp, call.room))
    sp = RtcPeer(ws_url(live_server), call.room, token=join_token(call.specialist, call.room))
    try:
        await gp.join()
        await sp.join()
        await asyncio.gather(gp.wait_media(), sp.wait_media())
        old_id = sp.peer_id
        seen = len(gp.events)
        resume = sp.welcome["resume_token"]
        await sp.drop()
        for pc in list(sp.pcs.values()):
            await pc.close()  # the network changed: the old connection is gone
        sp.pcs.clear()
        sp.connected.clear()
        sp.received.video = sp.received.audio = 0
        again = await sp.join(resume_token=resume)
        assert again["resumed"] is True and sp.peer_id == old_id
        # gp was told to restart ICE; being unable to, it offers on a fresh connection.
        await sp.wait_media()
        assert sp.received.video >= 5
        since_drop = gp.events[seen:]
        assert any(event["type"] == "ice-restart" for event in since_drop)
        assert not any(event["type"] in {"peer-left", "peer-joined"} for event in since_drop)
    finally:
        await asyncio.gather(gp.close(), sp.close())
