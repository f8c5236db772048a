"""CSRF on state-changing requests, role guards and organisation isolation."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.accounts.models import Role, User
from tests.factories import TEST_PASSWORD, login, make_organisation, make_user


def test_login_without_csrf_token_is_rejected(client: TestClient, db: Session) -> None:
    user = make_user(db)
    response = client.post("/api/auth/login", json={"email": user.email, "password": TEST_PASSWORD})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


def test_state_change_with_a_token_from_another_session_is_rejected(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    admin = make_user(db, Role.ADMIN)
    login(client, admin)
    foreign_token = login(other_client, make_user(db))
    body = {
        "email": "new-nurse@test.example",
        "name": "새 사용자",
        "role": "gp",
        "password": "long-enough-pw-1",
    }
    refused = client.post("/api/users", json=body, headers={"X-CSRF-Token": foreign_token})
    assert refused.status_code == 403
    assert db.exec(select(User).where(User.email == body["email"])).first() is None
    accepted = client.post("/api/users", json=body)  # the client's own token
    assert accepted.status_code == 201


def test_html_form_without_token_is_rejected(client: TestClient, db: Session) -> None:
    user = make_user(db)
    response = client.post(
        "/login",
        data={"email": user.email, "password": TEST_PASSWORD},
        headers={"Accept": "text/html"},
    )
    assert response.status_code == 403
    assert "csrf_failed" in response.text
    assert "Traceback" not in response.text


def test_role_guard_refuses_other_roles_with_403(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.GP))
    response = client.post(
        "/api/users",
        json={"email": "x@test.example", "name": "x", "role": "gp", "password": "long-enough-pw-1"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_unauthenticated_api_gets_401_json(client: TestClient) -> None:
    response = client.get("/api/organisations")
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthenticated", "message": "please log in"}}


def test_other_organisations_staff_and_users_are_not_found(client: TestClient, db: Session) -> None:
    mine = make_organisation(db)
    theirs = make_organisation(db)
    me = make_user(db, organisation=mine)
    colleague = make_user(db, organisation=mine)
    stranger = make_user(db, organisation=theirs)
    login(client, me)
    assert client.get(f"/api/organisations/{mine.id}/users").status_code == 200
    ids = {u["id"] for u in client.get(f"/api/organisations/{mine.id}/users").json()}
    assert {me.id, colleague.id} <= ids and stranger.id not in ids
    assert client.get(f"/api/organisations/{theirs.id}/users").status_code == 404
    assert client.get(f"/api/users/{colleague.id}").status_code == 200
    hidden = client.get(f"/api/users/{stranger.id}")
    missing = client.get("/api/users/999999999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_admin_creates_users_only_in_own_organisation(client: TestClient, db: Session) -> None:
    admin = make_user(db, Role.ADMIN)
    login(client, admin)
    response = client.post(
        "/api/users",
        json={
            "email": "Nurse.Kim@Test.example",
            "name": "김간호",
            "role": "gp",
            "password": "long-enough-pw-1",
        },
    )
    assert response.status_code == 201
    assert response.json()["organisation_id"] == admin.organisation_id
    assert response.json()["email"] == "nurse.kim@test.example"


def test_bad_user_input_gives_clear_4xx_and_writes_nothing(client: TestClient, db: Session) -> None:
    admin = make_user(db, Role.ADMIN)
    existing = make_user(db, organisation=None)
    login(client, admin)
    cases = [
        ({"role": "nurse"}, 422, "invalid_role"),
        ({"password": "short1"}, 422, "weak_password"),
        ({"password": "onlyletterslong"}, 422, "weak_password"),
        ({"email": existing.email}, 409, "duplicate_email"),
        ({"email": "not-an-email"}, 422, "invalid_email"),
        ({"role": "specialist"}, 422, "invalid_specialty"),
    ]
    before = len(db.exec(select(User)).all())
    for change, status, code in cases:
        body = {
            "email": "fresh@test.example",
            "name": "새 사람",
            "role": "gp",
            "password": "long-enough-pw-1",
            **change,
        }
        response = client.post("/api/users", json=body)
        assert response.status_code == status, (change, response.text)
        assert response.json()["error"]["code"] == code
    assert len(db.exec(select(User)).all()) == before


def test_validation_errors_name_the_field(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.ADMIN))
    response = client.post("/api/users", json={"email": "a@b.example", "role": "gp"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    fields = {f["field"] for f in error["fields"]}
    assert {"name", "password"} <= fields
