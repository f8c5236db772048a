"""Shared fixtures: one database per run and backend, the app, clients, a live server.

Every test that uses `database_url` (directly or through `app`, `client`, `db`) runs
on SQLite and on PostgreSQL. PostgreSQL is required: if it cannot be reached the
run fails loudly (Makefile starts it first), it is never skipped.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from server import migrate
from server.app import create_app
from server.audit import service as audit
from server.db import engine_for
from server.settings import Settings
from web import catalogs

PG_ADMIN_URL = os.environ.get(
    "DARI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = os.environ.get("DARI_TEST_BACKENDS", "sqlite,postgresql").split(",")
TEST_SECRET = "test-secret-key-not-for-production"
# The tests' specialists and administrators sign in with their password alone, as
# before two-factor sign-in: its own tests (tests/accounts/test_two_factor.py) turn
# the requirement back on (TOTP_ON). Production requires it of both roles.
TOTP_OFF = "[]"
TOTP_ON = '["specialist", "admin"]'
ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # `make test` compiles the catalogs first; this lets a plain `pytest` run after
    # editing a .po file (the app refuses to start on a stale catalog).
    catalogs.compile_catalogs()


def _create_pg_database() -> tuple[str, str]:
    name = f"dari_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as error:  # fail loudly: PostgreSQL is part of the suite
        raise RuntimeError(
            f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({error}); `make test` starts it"
        ) from error
    finally:
        admin.dispose()
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A freshly migrated database for this run: SQLite file or PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'dari.sqlite3'}"
        migrate.upgrade(url)
        # The audit chain's key, for events the tests write before any app exists.
        audit.configure(url, TEST_SECRET)
        yield url
        engine_for(url).dispose()
        if url in _observer_engines:
            _observer_engines.pop(url).dispose()
        return
    name, url = _create_pg_database()
    migrate.upgrade(url)
    audit.configure(url, TEST_SECRET)
    yield url
    engine_for(url).dispose()
    if url in _observer_engines:
        _observer_engines.pop(url).dispose()
    _drop_pg_database(name)


def make_settings(database_url: str, var_dir: Path, **overrides: object) -> Settings:
    # One checkpoint file per database: both backends' apps share the run's var_dir.
    checkpoints = var_dir / f"audit-{uuid.uuid5(uuid.NAMESPACE_URL, database_url).hex[:12]}.log"
    values: dict[str, object] = {
        "audit_checkpoints": checkpoints,
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "var_dir": var_dir,
        "testing": True,
        "totp_required_roles": [],
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def settings(database_url: str, var_dir: Path) -> Settings:
    return make_settings(database_url, var_dir)


@pytest.fixture(scope="session")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


_addresses = itertools.count(1)


def client_address() -> tuple[str, int]:
    """A distinct loopback address per client, so login throttling by address
    in one test does not leak into the next (only a label: no traffic is sent)."""
    n = next(_addresses)
    return (f"127.1.{n // 250}.{n % 250 + 1}", 50000)


def make_client(
    app: FastAPI, *, base_url: str = "http://testserver", raise_server_exceptions: bool = True
) -> TestClient:
    return TestClient(
        app,
        base_url=base_url,
        raise_server_exceptions=raise_server_exceptions,
        client=client_address(),
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A browser-like client with its own cookie jar and address."""
    with make_client(app) as test_client:
        yield test_client


@pytest.fixture
def other_client(app: FastAPI) -> Iterator[TestClient]:
    """A second, independent browser."""
    with make_client(app) as test_client:
        yield test_client


_observer_engines: dict[str, Engine] = {}


def observer_engine(database_url: str) -> Engine:
    """An autocommit engine for the tests' own reads and writes.

    Every statement commits at once, so a test never holds a transaction open:
    on SQLite an open transaction would block the app's writers (BEGIN IMMEDIATE),
    and a WAL read snapshot would hide what the app has just written.
    """
    if database_url not in _observer_engines:
        engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
        if database_url.startswith("sqlite"):

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

        _observer_engines[database_url] = engine
    return _observer_engines[database_url]


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    """A session for arranging and checking data; factories commit through it."""
    with Session(observer_engine(database_url), expire_on_commit=False) as session:
        yield session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(
    database_url: str,
    var_dir: Path,
    *,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `uvicorn server.main:app` in a subprocess and wait until /healthz answers."""
    port = port or free_port()
    env = {
        **os.environ,
        "DARI_DATABASE_URL": database_url,
        "DARI_SECRET_KEY": TEST_SECRET,
        "DARI_VAR_DIR": str(var_dir),
        "DARI_TOTP_REQUIRED_ROLES": TOTP_OFF,
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "server.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            # As `dari serve` runs it (signaling/serving.py uvicorn_options).
            "--ws",
            "signaling.serving:SignalingWebSocketProtocol",
            "--ws-per-message-deflate",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start within 30 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stderr:
        process.stderr.close()


@pytest.fixture(scope="session")
def live_server(database_url: str, var_dir: Path) -> Iterator[str]:
    """The real app under uvicorn on a free port, sharing the run's database."""
    process, base = start_server(database_url, var_dir)
    yield base
    stop_server(process)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last.

    The sync Playwright behind the session-wide `browser` keeps its event loop marked
    as running in the main thread; an asyncio test started after it fails with
    "Cannot run the event loop while another loop is running".
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


# The run's one headless Chromium, shared by every package's browser tests.
from tests.browser_support import browser  # noqa: E402, F401
