"""Two-factor sign-in: required of specialists and administrators (enrolment forced at the
next login), optional for GPs, throttled like passwords, recovery codes spent once;
a stolen password alone opens nothing. The enrolment is also driven in Chromium."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser
from sqlmodel import Session

from server.accounts.models import Role, User
from server.app import create_app
from tests.conftest import (
    TOTP_ON,
    make_client,
    make_settings,
    observer_engine,
    start_server,
    stop_server,
)
from tests.factories import TEST_PASSWORD, make_user


@pytest.fixture(scope="module")
def totp_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The app as deployed: specialists and administrators must use two-factor."""
    settings = make_settings(
        database_url,
        tmp_path_factory.mktemp("totpvar"),
        totp_required_roles=["specialist", "admin"],
    )
    return create_app(settings)


@pytest.fixture
def totp_client(totp_app: FastAPI) -> Iterator[TestClient]:
    with make_client(totp_app) as client:
        yield client


def _login(client: TestClient, user: User, otp: str | None = None) -> tuple[int, dict[str, str]]:
    csrf = client.get("/api/auth/csrf").json()["csrf_token"]
    body = {"email": user.email, "password": TEST_PASSWORD}
    if otp is not None:
        body["otp"] = otp
    response = client.post("/api/auth/login", json=body, headers={"X-CSRF-Token": csrf})
    data = response.json()
    if response.status_code == 200:
        client.headers["X-CSRF-Token"] = data["csrf_token"]
        return 200, {"pending": data["pending"]}
    return response.status_code, {"code": data["error"]["code"]}


def _enrol(client: TestClient) -> tuple[str, list[str]]:
    started = client.post("/api/me/totp").json()
    assert started["uri"].startswith("otpauth://totp/Dari:")
    code = pyotp.TOTP(started["secret"]).now()
    confirmed = client.post("/api/me/totp/confirm", json={"code": code})
    assert confirmed.status_code == 200, confirmed.text
    codes: list[str] = confirmed.json()["recovery_codes"]
    return started["secret"], codes


def test_a_specialist_must_enrol_before_anything_else(totp_client: TestClient, db: Session) -> None:
    specialist = make_user(db, Role.SPECIALIST)
    assert _login(totp_client, specialist) == (200, {"pending": "enrol"})
    # The pending session opens nothing but enrolment.
    assert totp_client.get("/api/me").status_code == 401
    assert totp_client.get("/api/consults").status_code == 401
    bad = totp_client.post("/api/me/totp/confirm", json={"code": "000000"})
    assert bad.status_code in (409, 422)
    secret, codes = _enrol(totp_client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert totp_client.get("/api/me").status_code == 200


def test_a_stolen_password_alone_opens_nothing_and_codes_are_throttled(
    totp_app: FastAPI, db: Session
) -> None:
    specialist = make_user(db, Role.SPECIALIST)
    with make_client(totp_app) as owner:
        _login(owner, specialist)
        secret, codes = _enrol(owner)
    with make_client(totp_app) as thief:
        assert _login(thief, specialist) == (401, {"code": "otp_required"})
        assert thief.get("/api/me").status_code == 401
        statuses = [_login(thief, specialist, otp="123456")[0] for _ in range(6)]
        # Wrong codes count as failed logins: the fifth is the last one heard.
        assert statuses[:5] == [401] * 5 and statuses[5] == 429
        # Even the right code waits out the throttle.
        assert _login(thief, specialist, otp=pyotp.TOTP(secret).now())[0] == 429


def test_an_authenticator_code_opens_one_sign_in_only(totp_app: FastAPI, db: Session) -> None:
    specialist = make_user(db, Role.SPECIALIST)
    with make_client(totp_app) as owner:
        _login(owner, specialist)
        secret, _ = _enrol(owner)
    db.refresh(specialist)
    enrolled_step = specialist.totp_last_step
    assert enrolled_step is not None
    totp = pyotp.TOTP(secret)
    # The enrolment's own code, replayed (read over a shoulder, say): refused.
    with make_client(totp_app) as replay:
        replayed = totp.at(enrolled_step * totp.interval)
        assert _login(replay, specialist, otp=replayed) == (401, {"code": "invalid_otp"})
    # The next step's code (the phone's clock a little ahead) works once, not twice.
    next_code = totp.at(time.time() + totp.interval)
    with make_client(totp_app) as first:
        assert _login(first, specialist, otp=next_code) == (200, {"pending": ""})
    with make_client(totp_app) as second:
        assert _login(second, specialist, otp=next_code) == (401, {"code": "invalid_otp"})
    db.refresh(specialist)
    assert specialist.totp_last_step is not None and specialist.totp_last_step > enrolled_step


def test_recovery_codes_work_once_and_gps_may_choose(totp_app: FastAPI, db: Session) -> None:
    gp = make_user(db, Role.GP)
    with make_client(totp_app) as client:
        assert _login(client, gp) == (200, {"pending": ""})  # optional for GPs
        _, codes = _enrol(client)
    with make_client(totp_app) as client:
        assert _login(client, gp, otp=codes[0]) == (200, {"pending": ""})
    with make_client(totp_app) as client:
        assert _login(client, gp, otp=codes[0])[1] == {"code": "invalid_otp"}


def test_enrolment_page_draws_the_qr_code_itself(totp_client: TestClient, db: Session) -> None:
    admin = make_user(db, Role.ADMIN)
    _login(totp_client, admin)
    page = totp_client.get("/account/two-factor", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "<svg" in page.text and "<script" not in page.text.split("<svg", 1)[1].split("</svg>")[0]
    assert "2단계 인증" in page.text


@pytest.mark.browser
def test_enrol_and_sign_in_with_a_code_in_chromium(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from server import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('totpdb') / 'dari.sqlite3'}"
    migrate.upgrade(url)
    process, base = start_server(
        url, tmp_path_factory.mktemp("totpbvar"), extra_env={"DARI_TOTP_REQUIRED_ROLES": TOTP_ON}
    )
    try:
        with Session(observer_engine(url), expire_on_commit=False) as db:
            specialist = make_user(db, Role.SPECIALIST)
        context = browser.new_context(base_url=base, locale="en-US")
        page = context.new_page()
        page.goto("/login")
        page.fill("#email", specialist.email)
        page.fill("#password", TEST_PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_url(f"{base}/account/two-factor")
        assert page.locator("figure.qr svg").count() == 1
        secret = page.locator("#totp-secret").text_content() or ""
        page.fill("#code", pyotp.TOTP(secret.strip()).now())
        page.click("button[type=submit].primary")
        page.wait_for_selector("#recovery-codes li")
        assert page.locator("#recovery-codes li").count() == 10
        page.click("#two-factor a.button")
        page.wait_for_url(f"{base}/")
        page.click("header form[action='/logout'] button")
        page.wait_for_url(f"{base}/login")
        page.fill("#email", specialist.email)
        page.fill("#password", TEST_PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_selector("#code-step")
        page.fill("#code", "000000")
        page.click("#code-step button")
        page.wait_for_selector("[role=alert]")
        # Not the enrolment's code again (each code opens one sign-in): the next step's.
        page.fill("#code", pyotp.TOTP(secret.strip()).at(time.time() + 30))
        page.click("#code-step button")
        page.wait_for_url(f"{base}/")
        context.close()
    finally:
        stop_server(process)
        engine = observer_engine(url)
        engine.dispose()
