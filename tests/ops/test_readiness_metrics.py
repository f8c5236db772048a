"""Readiness, the workers refusal and the metrics endpoint, through the running app."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server import migrate
from server.app import create_app
from server.db import engine_for
from server.ops import readiness
from tests.conftest import (
    ROOT,
    TEST_SECRET,
    free_port,
    make_client,
    make_settings,
    start_server,
    stop_server,
)

TOKEN = "metrics-token-for-tests"


@pytest.fixture(scope="module")
def ops_app(database_url: str, var_dir: Path) -> FastAPI:
    return create_app(make_settings(database_url, var_dir, metrics_token=TOKEN))


@pytest.fixture
def ops_client(ops_app: FastAPI) -> Iterator[TestClient]:
    with make_client(ops_app) as client:
        yield client


def test_readyz_reports_each_check(ops_client: TestClient) -> None:
    response = ops_client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "not configured"},
    }
    assert ops_client.get("/healthz").json() == {"status": "ok"}


def test_readyz_fails_when_migrations_lag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    migrate.upgrade(url, "0005")
    settings = make_settings(url, tmp_path)
    result = asyncio.run(readiness.check(engine_for(url), settings))
    engine_for(url).dispose()
    assert not result.ready
    assert result.checks["database"] == "ok"
    assert result.checks["migrations"].startswith("not at head")


def test_readyz_fails_when_database_or_redis_is_down(tmp_path: Path) -> None:
    dead = free_port()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{dead}/nothing?connect_timeout=2"
    settings = make_settings(url, tmp_path, redis_url=f"redis://127.0.0.1:{dead}/0")
    result = asyncio.run(readiness.check(engine_for(url), settings))
    engine_for(url).dispose()
    assert not result.ready
    assert result.checks == {
        "database": "unreachable",
        "migrations": "unknown",
        "redis": "unreachable",
    }


@pytest.mark.redis
def test_readyz_checks_redis_when_configured(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, redis_url="redis://127.0.0.1:6379/0")
    result = asyncio.run(readiness.check(engine_for(database_url), settings))
    assert result.ready
    assert result.checks["redis"] == "ok"


def test_serve_with_workers_and_no_redis_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "DARI_VAR_DIR": str(tmp_path), "DARI_SECRET_KEY": TEST_SECRET}
    env.pop("DARI_REDIS_URL", None)
    env.pop("DARI_SIGNALING_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--workers", "3"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "--workers 3 needs Redis" in lines[0]
    assert readiness.workers_refusal(3, make_settings("", tmp_path, redis_url="redis://x")) is None
    assert readiness.workers_refusal(1, make_settings("", tmp_path)) is None


def test_metrics_need_the_token(ops_client: TestClient, client: TestClient) -> None:
    assert ops_client.get("/metrics").status_code == 404
    wrong = {"Authorization": "Bearer nope"}
    assert ops_client.get("/metrics", headers=wrong).status_code == 404
    # The session's app has no token configured: no endpoint at all.
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def _scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        metric, _, raw_labels = key.partition("{")
        got = ",".join(sorted(raw_labels.rstrip("}").split(","))) if raw_labels else ""
        if metric == name and got == wanted:
            return float(value)
    return 0.0


def test_metrics_count_requests_by_route_and_login_failures(ops_client: TestClient) -> None:
    before = _scrape(ops_client)
    for _ in range(3):
        assert ops_client.get("/healthz").status_code == 200
    ops_client.get("/consults/does-not-exist", headers={"Accept": "text/html"})
    assert ops_client.get("/login").status_code == 200  # sets the anonymous CSRF cookie
    ops_client.post(
        "/api/auth/login",
        json={"email": "nobody@dari.example", "password": "wrong-password"},
        headers={"X-CSRF-Token": _csrf(ops_client)},
    )
    after = _scrape(ops_client)
    route = {"method": "GET", "route": "/healthz", "status": "200"}
    assert _value(after, "dari_http_requests_total", **route) - _value(
        before, "dari_http_requests_total", **route
    ) == pytest.approx(3)
    assert (
        _value(after, "dari_http_request_duration_seconds_count", method="GET", route="/healthz")
        >= 3
    )
    # Raw ids never become labels: the template does.
    assert "does-not-exist" not in after
    assert _value(after, "dari_login_failures_total", reason="invalid") - _value(
        before, "dari_login_failures_total", reason="invalid"
    ) == pytest.approx(1)
    for name in (
        "dari_rooms_open",
        "dari_websockets_open",
        "dari_note_updates_total",
        "dari_outbox_lag_seconds",
        "dari_escalations_total",
        "dari_call_rtt_ms",
    ):
        assert f"# TYPE {name}" in after


def _csrf(client: TestClient) -> str:
    from server.accounts.security import csrf_token

    anon = client.cookies.get("dari_anon") or ""
    return csrf_token(TEST_SECRET, f"anon:{anon}")


def test_request_id_is_echoed_or_made(ops_client: TestClient) -> None:
    given = ops_client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = ops_client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert made.headers["x-request-id"] != "<script>"
    assert len(made.headers["x-request-id"]) == 16


@pytest.mark.slow
def test_live_app_and_signaling_serve_readyz_and_metrics(database_url: str, var_dir: Path) -> None:
    process, base = start_server(database_url, var_dir, extra_env={"DARI_METRICS_TOKEN": TOKEN})
    try:
        assert httpx2.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
        scraped = httpx2.get(
            f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        assert scraped.status_code == 200
        assert 'dari_http_requests_total{method="GET",route="/readyz",status="200"}' in scraped.text
    finally:
        stop_server(process)
    port = free_port()
    env = {
        **os.environ,
        "DARI_DATABASE_URL": database_url,
        "DARI_SECRET_KEY": TEST_SECRET,
        "DARI_VAR_DIR": str(var_dir),
        "DARI_METRICS_TOKEN": TOKEN,
    }
    signaling = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "signaling", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        answer: httpx2.Response | None = None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            except httpx2.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        assert answer.json()["checks"]["migrations"] == "ok"
        scraped = httpx2.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert "dari_rooms_open 0.0" in scraped.text
    finally:
        signaling.terminate()
        out, _ = signaling.communicate(timeout=10)
    # Its log lines are JSON, one per request, with a request id.
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("msg") == "request"]
    assert any(line["route"] == "/readyz" and line["request_id"] for line in requests)
