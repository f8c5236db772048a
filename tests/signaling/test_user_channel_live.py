"""The user channel on a running server, fed from the real notification outbox."""

from __future__ import annotations

from sqlmodel import Session

from server.notifications import service as notifications
from tests.signaling.client import close_code, no_frame, open_ws, recv, send
from tests.signaling.factories import make_call, session_cookie


async def test_offline_notifications_arrive_on_reconnect_then_live(
    live_server: str, db: Session
) -> None:
    call = make_call(db)
    seen = notifications.notify(db, call.gp.id or 0, "consult.accepted", {"consult": call.room})
    missed = notifications.notify(db, call.gp.id or 0, "message.received", {"consult": call.room})
    notifications.notify(db, call.specialist.id or 0, "not.for.the.gp", {})
    db.commit()
    ws = await open_ws(live_server, "/ws/user", cookie=session_cookie(db, call.gp))
    await send(ws, type="subscribe", after_id=seen.id)
    frame = await recv(ws)
    assert frame["type"] == "notification" and frame["id"] == missed.id
    assert frame["kind"] == "message.received" and frame["payload"] == {"consult": call.room}
    live = notifications.notify(db, call.gp.id or 0, "consult.urgent", {"consult": call.room})
    db.commit()
    frame = await recv(ws, wait=10)
    assert frame["id"] == live.id and frame["kind"] == "consult.urgent"
    assert await no_frame(ws, 1.5)  # nothing else, in particular not the specialist's


async def test_user_channel_refuses_strangers_and_bad_origins(
    live_server: str, db: Session
) -> None:
    call = make_call(db)
    ws = await open_ws(live_server, "/ws/user")
    await send(ws, type="subscribe")
    assert await close_code(ws) == 4403
    cookie = session_cookie(db, call.gp)
    ws = await open_ws(live_server, "/ws/user", cookie=cookie, origin="https://evil.example")
    assert await close_code(ws) == 4403
