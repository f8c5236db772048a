"""Readiness: may this process take traffic? (database, migrations at head, Redis)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import cache

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from server import migrate
from server.db import database_answers
from server.settings import Settings

log = logging.getLogger("dari.ops")
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class Readiness:
    """Each check is "ok", "not configured" or a short reason; ready when none failed."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(value in {"ok", "not configured"} for value in self.checks.values())

    def body(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "not ready", "checks": self.checks}


@cache
def script_heads() -> frozenset[str]:
    """The heads of the migration scripts this code ships (read once per process)."""
    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    return frozenset(script.get_heads())


def database_heads(engine: Engine) -> frozenset[str] | None:
    """The revisions the database is at; None when it cannot be read."""
    try:
        with engine.connect() as connection:
            return frozenset(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as error:
        log.warning("migration state unreadable: %s", type(error).__name__)
        return None


def redis_url_of(settings: Settings) -> str:
    """The Redis this deployment uses (broker or fan-out), or "" when none."""
    for url in (settings.resolved_broker_url(), settings.redis_url):
        if url.startswith(("redis://", "rediss://", "unix://")):
            return url
    return ""


async def redis_answers(url: str) -> bool:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    client = Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS)
    try:
        return bool(await asyncio.wait_for(client.ping(), REDIS_TIMEOUT_SECONDS))
    except (RedisError, OSError, TimeoutError) as error:
        log.warning("redis does not answer: %s", type(error).__name__)
        return False
    finally:
        await client.aclose()


async def check(engine: Engine, settings: Settings) -> Readiness:
    """Run every check (the database ones in a thread: they block)."""
    result = Readiness()
    answers = await asyncio.to_thread(database_answers, engine)
    result.checks["database"] = "ok" if answers else "unreachable"
    if answers:
        heads = await asyncio.to_thread(database_heads, engine)
        if heads is None:
            result.checks["migrations"] = "unreadable"
        elif heads == script_heads():
            result.checks["migrations"] = "ok"
        else:
            result.checks["migrations"] = "not at head (run `dari migrate`)"
    else:
        result.checks["migrations"] = "unknown"
    url = redis_url_of(settings)
    if url:
        result.checks["redis"] = "ok" if await redis_answers(url) else "unreachable"
    else:
        result.checks["redis"] = "not configured"
    return result


def standalone_routes(engine: Engine, settings: Settings) -> list[BaseRoute]:
    """/healthz, /readyz and /metrics for `dari signaling` (the app has its own router)."""
    from server.ops.router import metrics_response

    async def healthz(_: Request) -> Response:
        answers = await asyncio.to_thread(database_answers, engine)
        return JSONResponse(
            {"status": "ok" if answers else "database unavailable"}, 200 if answers else 503
        )

    async def readyz(_: Request) -> Response:
        result = await check(engine, settings)
        return JSONResponse(result.body(), status_code=200 if result.ready else 503)

    async def prometheus(request: Request) -> Response:
        return metrics_response(settings, request.headers.get("authorization"))

    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
    ]


def workers_refusal(workers: int, settings: Settings) -> str | None:
    """Why `serve --workers N` must not start, or None when it may."""
    # DARI_REDIS_URL itself: the shared notes fan out through it (the signaling broker
    # alone, DARI_SIGNALING_BROKER_URL, would still leave notes split per process).
    if workers > 1 and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        return (
            f"--workers {workers} needs Redis (DARI_REDIS_URL): without it each process "
            "keeps its own rooms and notes, and a call's two sides may never meet"
        )
    return None
