"""Pages: login form, each role's home, language switch, health, error pages."""

from __future__ import annotations

import httpx2
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Role
from server.db import engine_for
from server.settings import Settings
from tests.conftest import make_client, make_settings
from tests.factories import TEST_PASSWORD, make_user


def _form_login(client: TestClient, email: str, password: str) -> httpx2.Response:
    """Log in through the HTML form (TestClient answers with httpx2 responses)."""
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_login_page_is_korean_by_default(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert '<html lang="ko">' in page.text
    assert 'name="csrf_token"' in page.text
    assert "dari_anon=" in page.headers["set-cookie"]


def test_each_role_lands_on_its_home(client: TestClient, db: Session) -> None:
    titles = {Role.GP: 'id="requests"', Role.SPECIALIST: 'id="inbox"', Role.ADMIN: 'id="staff"'}
    for role, marker in titles.items():
        client.cookies.clear()
        user = make_user(db, role)
        response = _form_login(client, user.email, TEST_PASSWORD)
        assert response.status_code == 303
        home = client.get("/")
        assert home.status_code == 200
        assert marker in home.text
        assert user.name in home.text


def test_form_login_failure_shows_the_form_again(client: TestClient, db: Session) -> None:
    user = make_user(db)
    response = _form_login(client, user.email, "wrong-password-1")
    assert response.status_code == 401
    assert 'role="alert"' in response.text


def test_anonymous_home_redirects_to_login(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_language_switch_to_english_and_back(client: TestClient) -> None:
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    switched = client.post("/lang", data={"locale": "en", "next": "/login", "csrf_token": token})
    assert switched.status_code == 200
    assert '<html lang="en">' in switched.text
    assert "Log in" in switched.text


def test_language_switch_never_redirects_off_site(client: TestClient) -> None:
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post(
        "/lang",
        data={"locale": "en", "next": "//evil.example/", "csrf_token": token},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_a_malformed_cookie_header_is_ignored(client: TestClient) -> None:
    # `$x` is not a cookie attribute: http.cookies refuses the whole header (CookieError).
    page = client.get("/login", headers={"Cookie": "a=1; $x=2"})
    assert page.status_code == 200
    assert "dari_anon=" in page.headers["set-cookie"]


def test_healthz_answers_200_with_a_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_answers_503_without_a_database(tmp_path: object) -> None:
    from pathlib import Path

    missing = Path(str(tmp_path)) / "no-such-dir" / "x" / "db.sqlite3"
    settings = make_settings(f"sqlite:///{missing}", Path(str(tmp_path)))
    from server.app import create_app

    app: FastAPI = create_app(settings)
    # Make the database unreachable: a directory where the file should be.
    missing.parent.mkdir(parents=True, exist_ok=True)
    missing.mkdir()
    with make_client(app) as client:
        response = client.get("/healthz")
    engine_for(f"sqlite:///{missing}").dispose()
    assert response.status_code == 503


def test_html_errors_are_friendly_pages_without_traces(client: TestClient) -> None:
    response = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "<html" in response.text and "not_found" in response.text
    assert "Traceback" not in response.text


def test_api_errors_are_json(client: TestClient) -> None:
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/api/auth/login" in schema["paths"]


def test_security_headers_on_every_response(client: TestClient) -> None:
    response = client.get("/login")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_static_files_have_hashed_names_and_long_cache(client: TestClient) -> None:
    page = client.get("/login").text
    href = page.split('rel="stylesheet" href="', 1)[1].split('"', 1)[0]
    assert href.startswith("/static/app.") and href.endswith(".css")
    response = client.get(href)
    assert response.status_code == 200
    assert "immutable" in response.headers["cache-control"]
    assert client.get("/static/app.css").status_code == 404


def test_unexpected_errors_become_a_plain_500(settings: Settings) -> None:
    from server.app import create_app

    app = create_app(settings)  # a private app: the route below must not leak into others

    @app.get("/api/test-boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    with make_client(app, raise_server_exceptions=False) as client:
        response = client.get("/api/test-boom")
    assert response.status_code == 500
    assert "secret detail" not in response.text
    assert response.json()["error"]["code"] == "internal_error"
