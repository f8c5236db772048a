"""Request id, one log line and the metrics for every HTTP request and socket session."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.ops import logs, metrics

log = logging.getLogger("dari.request")
UNMATCHED = "<unmatched>"
PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # server.consults.models.new_public_id


def route_template(scope: Scope) -> str:
    """The matched route's template ("/consults/{public_id}"), never the raw path:
    bounded metric labels, and no identifiers or query text in a log line."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or path is None or isinstance(route, Mount):
        return UNMATCHED
    prefix = scope.get("root_path", "")
    app_root = scope.get("app_root_path", "")
    if app_root and prefix.startswith(app_root):
        prefix = prefix[len(app_root) :]
    return f"{prefix}{path}"


def _user_id(scope: Scope) -> str | None:
    # accounts.deps.optional_user caches (user, login session) on request.state.
    auth = scope.get("state", {}).get("auth")
    if auth:
        user_id = getattr(auth[0], "id", None)
        return str(user_id) if user_id is not None else None
    return None


def _consult(scope: Scope, status: int | None = None) -> str | None:
    """The consult's public id from the path, only when it has the shape of one and the
    request succeeded: a path segment is user input and could be any text."""
    if status is not None and status >= 400:
        return None
    params: dict[str, Any] = scope.get("path_params") or {}
    value = params.get("public_id")
    return value if isinstance(value, str) and PUBLIC_ID.match(value) else None


class ObservabilityMiddleware:
    """Outermost: sees every request's route, status, time and ids once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = logs.valid_request_id(value.decode("latin-1"))
        request_id = incoming or secrets.token_hex(8)
        context: dict[str, str] = {"request_id": request_id}
        token = logs.CONTEXT.set(context)
        started = time.perf_counter()
        try:
            if scope["type"] == "http":
                await self._http(scope, receive, send, request_id, started)
            else:
                await self._socket(scope, receive, send, started)
        finally:
            logs.CONTEXT.reset(token)

    async def _http(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, started: float
    ) -> None:
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope.get("method", "GET")
            metrics.HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            metrics.HTTP_LATENCY.labels(method=method, route=route).observe(elapsed)
            if not route.startswith("/static/"):
                logs.bind(user_id=_user_id(scope), consult=_consult(scope, status))
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )

    async def _socket(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        close_code: int | None = None
        counted: str | None = None

        async def watch_send(message: Message) -> None:
            nonlocal close_code, counted
            if message["type"] == "websocket.accept" and counted is None:
                counted = route_template(scope)
                metrics.SOCKETS_OPEN.labels(route=counted).inc()
            elif message["type"] == "websocket.close":
                close_code = int(message.get("code", 1000))
            await send(message)

        try:
            await self.app(scope, receive, watch_send)
        finally:
            route = counted or route_template(scope)
            if counted is not None:
                metrics.SOCKETS_OPEN.labels(route=counted).dec()
            metrics.SOCKET_SESSIONS.labels(route=route).inc()
            logs.bind(consult=_consult(scope, None if close_code in (None, 1000, 1001) else 400))
            log.info(
                "socket session",
                extra={
                    "route": route,
                    "close_code": close_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
