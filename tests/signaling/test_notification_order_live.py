"""Two transactions that commit out of id order, through the real server (uvicorn, the
run's database): a connected page and a page that reconnects both get both rows, once.

On PostgreSQL the lower id is taken first and committed last, after the poller has
delivered the higher one. SQLite serialises writers (the second insert waits for the
first commit), so there the same steps commit in id order: the test checks that too.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select
from websockets.asyncio.client import ClientConnection

from server.db import engine_for
from server.notifications import service as notifications
from server.notifications.models import Notification
from tests.signaling.catchup import catch_up
from tests.signaling.client import no_frame, open_ws, recv, send
from tests.signaling.factories import make_call, session_cookie


class Page:
    """A page following the inbox's catch-up rule over a real socket."""

    def __init__(self, base: str, cookie: str, floor: int) -> None:
        self.base, self.cookie = base, cookie
        self.state: dict[str, Any] = {"floor": floor, "seen": []}
        self.handled: list[int] = []
        self.frames: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None

    async def connect(self) -> None:
        self.ws = await open_ws(self.base, "/ws/user", cookie=self.cookie)
        await send(self.ws, type="subscribe", after_id=self.state["floor"])

    async def hear(self, wanted: int, wait: float = 10) -> None:
        """Receive until `wanted` has been handled."""
        assert self.ws is not None
        while wanted not in self.handled:
            frame = await recv(self.ws, wait)
            assert frame["type"] == "notification", frame
            self.frames.append(frame)
            self.state, fresh = catch_up(self.state, frame)
            if fresh:
                self.handled.append(frame["id"])


async def test_a_lower_id_committed_after_a_higher_one_reaches_live_and_reconnecting_pages(
    live_server: str, db: Session, database_url: str
) -> None:
    call = make_call(db)
    user_id = call.gp.id or 0
    start = int(db.exec(select(func.max(Notification.id))).one() or 0)
    live = Page(live_server, session_cookie(db, call.gp), start)
    leaving = Page(live_server, session_cookie(db, call.gp), start)
    await live.connect()
    await leaving.connect()
    await asyncio.sleep(0.5)  # both subscriptions are in place
    engine = engine_for(database_url)
    postgres = engine.dialect.name == "postgresql"
    first, second = Session(engine), Session(engine)
    try:
        # Transaction A takes the lower id and stays open.
        a = await asyncio.to_thread(
            lambda: notifications.notify(first, user_id, "urgent.ring", {"n": "a"}).id or 0
        )
        ids: dict[str, int] = {}

        def write_b() -> None:
            ids["b"] = notifications.notify(second, user_id, "urgent.ring", {"n": "b"}).id or 0
            second.commit()

        writer = threading.Thread(target=write_b)
        writer.start()
        if postgres:
            # B takes the higher id and commits first; the poller delivers it.
            await asyncio.to_thread(writer.join, 10)
            b = ids["b"]
            assert b > a
            await live.hear(b)
            await leaving.hear(b)
            # Its frame must not tell the page it has everything up to b: a is in flight.
            assert all(f["floor"] is None or f["floor"] < a for f in leaving.frames)
            assert leaving.ws is not None
            await leaving.ws.close()
            await asyncio.sleep(1.5)  # the poller runs again meanwhile
            await asyncio.to_thread(first.commit)  # A commits last, below b
        else:
            # B waits for A's lock: A commits first, then B; the leaving page goes first.
            await asyncio.sleep(0.3)
            assert writer.is_alive() and "b" not in ids
            assert leaving.ws is not None
            await leaving.ws.close()
            await asyncio.to_thread(first.commit)
            await asyncio.to_thread(writer.join, 10)
            b = ids["b"]
            assert b > a
        await live.hear(a)
        await live.hear(b)
        await leaving.connect()  # with its catch-up state: the floor it was told
        await leaving.hear(a)
        await leaving.hear(b)
        assert live.ws is not None and leaving.ws is not None
        assert await no_frame(live.ws, 1.5)  # nothing twice on the live socket
        await no_frame(leaving.ws, 1.5)
        expected = [b, a] if postgres else [a, b]
        assert live.handled == expected
        assert leaving.handled == expected  # each once, whatever was sent again
    finally:
        first.close()
        second.close()
        engine.dispose()
