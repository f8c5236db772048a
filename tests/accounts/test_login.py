"""Login, sessions, cookies, logout and throttling through the app."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from server.accounts.models import LoginAttempt, LoginSession, Role
from server.audit.models import AuditEvent
from server.clock import utcnow
from tests.conftest import make_client
from tests.factories import TEST_PASSWORD, login, make_user


def _csrf(client: TestClient) -> str:
    token: str = client.get("/api/auth/csrf").json()["csrf_token"]
    return token


def _attempt(client: TestClient, email: str, password: str) -> int:
    response = client.post(
        "/api/auth/login",
        json={"email": email, "password": password},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    return response.status_code


def test_login_success_sets_a_safe_session_cookie(client: TestClient, db: Session) -> None:
    user = make_user(db, Role.GP)
    response = client.post(
        "/api/auth/login",
        json={"email": user.email.upper(), "password": TEST_PASSWORD},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert response.status_code == 200
    assert response.json()["user"]["email"] == user.email
    cookie = response.headers["set-cookie"]
    assert "dari_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http in tests
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    assert client.get("/api/me").json()["user"]["id"] == user.id


def test_cookie_is_secure_over_https(app: FastAPI, db: Session) -> None:
    user = make_user(db)
    with make_client(app, base_url="https://testserver") as secure_client:
        csrf = secure_client.get("/api/auth/csrf").json()["csrf_token"]
        response = secure_client.post(
            "/api/auth/login",
            json={"email": user.email, "password": TEST_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_and_unknown_email_are_refused_alike(
    client: TestClient, db: Session
) -> None:
    user = make_user(db)
    wrong = client.post(
        "/api/auth/login",
        json={"email": user.email, "password": "not-the-password-1"},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    unknown = client.post(
        "/api/auth/login",
        json={"email": "nobody-here@test.example", "password": "not-the-password-1"},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert "dari_session" not in wrong.headers.get("set-cookie", "")


def test_inactive_user_cannot_log_in(client: TestClient, db: Session) -> None:
    user = make_user(db, active=False)
    assert _attempt(client, user.email, TEST_PASSWORD) == 401


def test_logout_really_ends_the_session(client: TestClient, db: Session) -> None:
    user = make_user(db)
    login(client, user)
    cookie = client.cookies.get("dari_session")
    assert client.post("/api/auth/logout").status_code == 204
    # Replaying the old cookie must not work: the server-side session is ended.
    client.cookies.set("dari_session", cookie or "")
    assert client.get("/api/me").status_code == 401
    record = db.exec(select(LoginSession).where(LoginSession.user_id == user.id)).one()
    assert record.ended_at is not None


def test_session_expires_after_inactivity(client: TestClient, db: Session) -> None:
    user = make_user(db)
    login(client, user)
    assert client.get("/api/me").status_code == 200
    record = db.exec(select(LoginSession).where(LoginSession.user_id == user.id)).one()
    record.last_seen_at = utcnow() - timedelta(minutes=31)
    db.add(record)
    db.commit()
    assert client.get("/api/me").status_code == 401


def test_five_failures_for_one_account_throttle_with_retry_after(
    client: TestClient, db: Session
) -> None:
    user = make_user(db)
    for _ in range(5):
        assert _attempt(client, user.email, "wrong-password-9") == 401
    response = client.post(
        "/api/auth/login",
        json={"email": user.email, "password": TEST_PASSWORD},  # even the right password
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert response.status_code == 429
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60 + 1
    events = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "auth.login_throttled", AuditEvent.object_id == user.email
        )
    ).all()
    assert len(events) == 1


def test_four_failures_do_not_throttle(client: TestClient, db: Session) -> None:
    user = make_user(db)
    for _ in range(4):
        assert _attempt(client, user.email, "wrong-password-9") == 401
    assert _attempt(client, user.email, TEST_PASSWORD) == 200


def test_five_failures_from_one_address_throttle_other_accounts(
    client: TestClient, db: Session
) -> None:
    users = [make_user(db) for _ in range(5)]
    for user in users:
        assert _attempt(client, user.email, "wrong-password-9") == 401
    fresh = make_user(db)
    assert _attempt(client, fresh.email, TEST_PASSWORD) == 429
    address = db.exec(select(LoginAttempt.ip).where(LoginAttempt.email == users[0].email)).one()
    for attempt in db.exec(select(LoginAttempt).where(col(LoginAttempt.ip) == address)).all():
        attempt.at = utcnow() - timedelta(hours=1)
        db.add(attempt)
    db.commit()
    assert _attempt(client, fresh.email, TEST_PASSWORD) == 200
