"""Operations endpoints: liveness, readiness and the (token-protected) metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from server.db import database_answers
from server.ops import metrics, readiness
from server.settings import Settings

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz(request: Request) -> Response:
    """Liveness: 200 when the database answers, 503 when it does not."""
    if database_answers(request.app.state.engine):
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "database unavailable"}, status_code=503)


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Readiness: database reachable, migrations at head, Redis when configured."""
    result = await readiness.check(request.app.state.engine, request.app.state.settings)
    return JSONResponse(result.body(), status_code=200 if result.ready else 503)


def metrics_allowed(settings: Settings, authorization: str | None) -> bool:
    """Only with the configured bearer token; no token configured means no endpoint."""
    if not settings.metrics_token:
        return False
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.encode(), settings.metrics_token.encode()
    )


def metrics_response(settings: Settings, authorization: str | None) -> Response:
    # 404, not 401: a scanner learns nothing about the endpoint.
    if not metrics_allowed(settings, authorization):
        return JSONResponse(
            {"error": {"code": "not_found", "message": "not found"}}, status_code=404
        )
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


@router.get("/metrics")
def prometheus(request: Request) -> Response:
    """Prometheus text format, for the scraper holding DARI_METRICS_TOKEN."""
    return metrics_response(request.app.state.settings, request.headers.get("authorization"))
