"""What several benchmarks share: a PostgreSQL database of their own, and the real app
started as `dari serve` starts it (its uvicorn options: no per-message deflate, the
signaling protocol), so what is measured is what runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent


def fresh_database(server_url: str, name: str) -> str:
    """An empty database `name` on the PostgreSQL server of `server_url`; returns its URL."""
    drop_database(server_url, name)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def drop_database(server_url: str, name: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def start_app(
    url: str, var_dir: str, port: int, secret: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`dari serve` on 127.0.0.1:`port` against `url` (the caller waits until it answers)."""
    environment = {
        **os.environ,
        "DARI_DATABASE_URL": url,
        "DARI_SECRET_KEY": secret,
        "DARI_VAR_DIR": var_dir,
        "DARI_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=environment,
    )


def wait_healthy(base: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Return once the app at `base` answers /healthz; raise if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the app did not start")
        time.sleep(0.1)
