"""Two server processes sharing Redis, polling only every 30 s: a notification committed
by a request on one reaches a page on the other at once (the wake over the broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlmodel import Session

from server.accounts.security import csrf_token, token_hash
from tests.conftest import TEST_SECRET, start_server, stop_server
from tests.signaling.client import open_ws, recv, send
from tests.signaling.factories import make_call, session_cookie

REDIS_URL = "redis://127.0.0.1:6379/5"
pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def slow_polling_servers(database_url: str, var_dir: Path) -> Iterator[tuple[str, str]]:
    env = {"DARI_REDIS_URL": REDIS_URL, "DARI_NOTIFICATION_POLL_SECONDS": "30"}
    first, base1 = start_server(database_url, var_dir, extra_env=env)
    try:
        second, base2 = start_server(database_url, var_dir, extra_env=env)
    except Exception:
        stop_server(first)
        raise
    yield base1, base2
    stop_server(second)
    stop_server(first)


async def test_a_commit_on_one_process_is_delivered_on_the_other_at_once(
    slow_polling_servers: tuple[str, str], db: Session
) -> None:
    base1, base2 = slow_polling_servers
    call = make_call(db)
    page = await open_ws(base2, "/ws/user", cookie=session_cookie(db, call.specialist))
    await send(page, type="subscribe", after_id=0)
    await asyncio.sleep(0.5)  # the subscription is in place
    gp = session_cookie(db, call.gp)
    async with httpx.AsyncClient(base_url=base1, cookies={"dari_session": gp}) as http:
        started = time.monotonic()
        response = await http.post(
            f"/api/consults/{call.room}/messages",
            json={"body": "Could you look at the new photos?"},
            headers={"X-CSRF-Token": csrf_token(TEST_SECRET, token_hash(gp))},
        )
        assert response.status_code == 201, response.text
    frame = await recv(page, wait=5)
    while frame.get("kind") != "consult.message":
        frame = await recv(page, wait=5)
    # Well before the 30 s poll: the wake carried it.
    assert time.monotonic() - started < 5
    assert frame["payload"]["consult"] == call.room
