"""Hostile input is refused at the edge with a 422 naming the field; login throttling holds
for long e-mails; absolute URLs come from configuration; forwarded headers are believed
only from configured proxies; an unexpected error does not cost the connection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session
from starlette.types import Message, Receive, Scope, Send
from typer.testing import CliRunner

from server.accounts.models import Role
from server.app import create_app
from server.errors import UnexpectedErrorMiddleware
from server.settings import get_settings
from tests.conftest import make_client, make_settings
from tests.factories import login, make_user


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def test_ids_beyond_32_bits_name_the_field(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.ADMIN))
    response = client.get("/api/users/2147483648")
    assert response.status_code == 422
    assert error_of(response)["field"] == "user_id"
    response = client.get("/api/slots", params={"specialty_id": 10**20})
    assert response.status_code == 422
    assert error_of(response)["field"] == "specialty_id"
    response = client.post("/api/users/99999999999/deactivate")
    assert response.status_code == 422


def test_datetimes_near_year_one_and_9999_are_refused(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.GP))
    for value in ("9999-12-31T23:59:59", "0001-01-01T00:00:00"):
        response = client.get("/api/slots", params={"specialty_id": 1, "start": value})
        assert response.status_code == 422, response.text
        assert error_of(response)["field"] == "start"


def test_nul_bytes_are_refused_naming_the_field(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.GP))
    response = client.post(
        "/api/consults",
        json={
            "specialty_id": 1,
            "patient_chart_number": "A\x00",
            "patient_age": 40,
            "patient_sex": "female",
            "clinical_question": "q",
        },
    )
    assert response.status_code == 422
    assert error_of(response)["field"] == "patient_chart_number"
    response = client.get("/api/audit", params={"action": "x\x00"})
    assert response.status_code == 422
    assert error_of(response)["field"] == "action"
    assert client.get("/api/consults/ab%00cd").status_code in (404, 422)


def test_long_emails_are_throttled_like_any_other(client: TestClient, db: Session) -> None:
    """A 300-character e-mail once overflowed the audit insert on PostgreSQL (500, rolled
    back), so its failures were never counted."""
    email = "x" * 240 + "@example.org"
    csrf = client.get("/api/auth/csrf").json()["csrf_token"]
    statuses = []
    for _ in range(6):
        response = client.post(
            "/api/auth/login",
            json={"email": email, "password": "wrong"},
            headers={"X-CSRF-Token": csrf},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 401, 401, 429]


def test_feed_url_ignores_the_host_header(database_url: str, tmp_path: Path, db: Session) -> None:
    settings = make_settings(database_url, tmp_path, public_base_url="https://dari.example.org/")
    app = create_app(settings)
    with make_client(app, base_url="http://evil.example") as client:
        login(client, make_user(db, Role.SPECIALIST))
        url = client.post("/api/calendar/feed", headers={"Host": "evil.example"}).json()["url"]
        assert url.startswith("https://dari.example.org/calendar/"), url
        feed = client.get(url.removeprefix("https://dari.example.org"))
        assert feed.status_code == 200
        assert "evil.example" not in feed.text


@pytest.mark.parametrize(("trusted", "proxy_headers"), [("", False), ('["10.0.0.2"]', True)])
def test_serve_trusts_forwarded_headers_only_from_configured_proxies(
    monkeypatch: pytest.MonkeyPatch, trusted: str, proxy_headers: bool
) -> None:
    import uvicorn

    from server.cli import app as cli

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setenv("DARI_TRUSTED_PROXIES", trusted or "[]")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert seen["proxy_headers"] is proxy_headers
    assert seen["forwarded_allow_ips"] == ("10.0.0.2" if proxy_headers else "")


def test_an_unexpected_error_is_answered_without_raising() -> None:
    """The server closes a keep-alive connection when the app raises; this one does not."""

    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("secret")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/api/x",
        "headers": [],
        "query_string": b"",
    }
    asyncio.run(UnexpectedErrorMiddleware(boom)(scope, receive, send))
    assert sent[0]["status"] == 500
    assert b"secret" not in b"".join(m.get("body", b"") for m in sent)


def test_schema_declares_the_refusals(app: FastAPI) -> None:
    schema = app.openapi()
    responses = schema["paths"]["/api/users/{user_id}"]["get"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(responses)
