"""A session that ends, ends everywhere: its HTTP cookie, its call and user-channel sockets
(within a second), on logout, deactivation, password change and an administrator's
revoke. Users see their sessions and can end them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Role
from server.accounts.security import csrf_token, token_hash
from tests.conftest import TEST_SECRET
from tests.factories import TEST_PASSWORD, login, make_user
from tests.signaling.client import close_all, close_code, open_ws, recv_type, send
from tests.signaling.factories import make_call, session_cookie


@pytest.fixture(autouse=True)
async def _close_sockets() -> AsyncIterator[None]:
    yield
    await close_all()


def test_users_list_and_end_their_sessions(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    user = make_user(db, Role.GP)
    login(client, user)
    login(other_client, user)
    sessions = client.get("/api/me/sessions").json()
    assert len(sessions) == 2
    assert sum(1 for row in sessions if row["current"]) == 1
    other = next(row for row in sessions if not row["current"])
    assert client.post(f"/api/me/sessions/{other['id']}/end").status_code == 204
    assert other_client.get("/api/me").status_code == 401
    assert client.get("/api/me").status_code == 200
    # Someone else's session is absent.
    stranger = make_user(db, Role.GP)
    with TestClient(client.app) as third:
        login(third, stranger)
        mine = client.get("/api/me/sessions").json()[0]["id"]
        assert third.post(f"/api/me/sessions/{mine}/end").status_code == 404


def test_account_page_lists_sessions_in_both_languages(client: TestClient, db: Session) -> None:
    user = make_user(db, Role.GP)
    login(client, user)
    client.headers["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 Safari/537.36"
    page = client.get("/account", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "로그인된 기기" in page.text and "이 기기" in page.text
    client.put("/api/me/locale", json={"locale": "en"})
    page = client.get("/account", headers={"Accept": "text/html"})
    assert "Signed-in devices" in page.text


def test_password_change_ends_other_sessions_and_explains_refusals(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    user = make_user(db, Role.GP)
    login(client, user)
    login(other_client, user)
    weak = client.put("/api/me/password", json={"current": TEST_PASSWORD, "new": "password123"})
    assert weak.status_code == 422 and weak.json()["error"]["code"] == "weak_password"
    wrong = client.put(
        "/api/me/password", json={"current": "nope", "new": "우리집강아지는귀여워요"}
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "wrong_password"
    # A Hangul passphrase is a good password.
    changed = client.put(
        "/api/me/password", json={"current": TEST_PASSWORD, "new": "우리집강아지는귀여워요"}
    )
    assert changed.status_code == 204
    assert other_client.get("/api/me").status_code == 401
    assert client.get("/api/me").status_code == 200
    page = client.post(
        "/account/password",
        data={"current": "우리집강아지는귀여워요", "new": "qwerty123456", "again": "qwerty123456"},
        headers={"Accept": "text/html"},
    )
    assert page.status_code == 422
    assert "추측" in page.text  # the reason, in the user's language (Korean by default)


def _csrf(cookie: str) -> str:
    return csrf_token(TEST_SECRET, token_hash(cookie))


async def _assert_closed_within_a_second(*sockets: object) -> None:
    started = time.monotonic()
    for ws in sockets:
        assert await close_code(ws, wait=2) == 4403  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0


async def test_logout_closes_call_notes_and_user_channel(live_server: str, db: Session) -> None:
    call = make_call(db)
    cookie = session_cookie(db, call.gp)
    other_device = session_cookie(db, call.gp)
    user_ws = await open_ws(live_server, "/ws/user", cookie=cookie)
    await send(user_ws, type="subscribe")
    room_ws = await open_ws(live_server, "/ws/room", cookie=cookie)
    await send(room_ws, type="join", room=call.room)
    await recv_type(room_ws, "welcome")
    notes_ws = await open_ws(live_server, f"/notes/ws/{call.room}", cookie=cookie)
    await send(notes_ws, type="join", client="tab-1")
    await recv_type(notes_ws, "ready")
    kept = await open_ws(live_server, "/ws/user", cookie=other_device)
    await send(kept, type="subscribe")
    response = httpx2.post(
        f"{live_server}/api/auth/logout",
        cookies={"dari_session": cookie},
        headers={"X-CSRF-Token": _csrf(cookie)},
    )
    assert response.status_code == 204
    await _assert_closed_within_a_second(user_ws, room_ws, notes_ws)
    # The same user's other device keeps its socket.
    await send(kept, type="ping", ts=1)
    assert (await recv_type(kept, "pong"))["ts"] == 1


async def test_deactivation_and_revoke_close_every_socket(live_server: str, db: Session) -> None:
    call = make_call(db)
    admin = make_user(db, Role.ADMIN)
    admin.organisation_id = call.gp.organisation_id
    db.add(admin)
    db.commit()
    admin_cookie = session_cookie(db, admin)
    for action in ("sessions/revoke", "deactivate"):
        cookie = session_cookie(db, call.gp)
        user_ws = await open_ws(live_server, "/ws/user", cookie=cookie)
        await send(user_ws, type="subscribe")
        room_ws = await open_ws(live_server, "/ws/room", cookie=cookie)
        await send(room_ws, type="join", room=call.room)
        await recv_type(room_ws, "welcome")
        response = httpx2.post(
            f"{live_server}/api/users/{call.gp.id}/{action}",
            cookies={"dari_session": admin_cookie},
            headers={"X-CSRF-Token": _csrf(admin_cookie)},
        )
        assert response.status_code in (200, 204), response.text
        await _assert_closed_within_a_second(user_ws, room_ws)
        # The cookie no longer opens a socket either.
        again = await open_ws(live_server, "/ws/user", cookie=cookie)
        await send(again, type="subscribe")
        assert await close_code(again) == 4403
