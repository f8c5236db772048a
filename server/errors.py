"""One error type for the whole server, rendered by one set of handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.render import render_error_page

log = logging.getLogger("dari.errors")


class AppError(Exception):
    """A refusal with a stable code, a human message and its HTTP status."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.headers = headers or {}
        self.extra = extra or {}


class NotFound(AppError):
    def __init__(self, what: str = "resource") -> None:
        super().__init__("not_found", f"{what} not found", 404)


class Forbidden(AppError):
    def __init__(self, message: str = "you may not do this") -> None:
        super().__init__("forbidden", message, 403)


class Conflict(AppError):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(code, message, 409, extra=extra)


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    """Every refusal: a stable code, a message, and the field at fault when there is one."""

    error: ErrorDetail


# Declared on every API route (server.app): the refusals any of them may give.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "bad request"),
        (401, "not logged in, or wrong credentials"),
        (403, "not allowed for this role, or the CSRF token is missing"),
        (404, "absent, or another organisation's"),
        (409, "conflicts with the current state"),
        (413, "too large"),
        (422, "invalid input; `field` names it"),
        (429, "too many attempts; see Retry-After"),
    )
}


def wants_html(request: Request) -> bool:
    """Pages get a friendly page; /api and everything asking for JSON gets JSON."""
    if request.url.path.startswith("/api/"):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    return {"error": body}


def _render(request: Request, status: int, code: str, message: str, **extra: Any) -> Response:
    headers = extra.pop("headers", None)
    if wants_html(request):
        return render_error_page(request, status, code, message, headers=headers)
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return _render(request, exc.status, exc.code, exc.message, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = []
        for err in exc.errors():
            location = [
                str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")
            ]
            fields.append({"field": ".".join(location), "message": err.get("msg", "invalid")})
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid input"
        first = fields[0]["field"] if fields else ""
        return _render(request, 422, "validation_error", summary, field=first, fields=fields)

    # A value the database cannot hold (a string with a NUL byte, a number beyond its
    # column) is the client's mistake, not ours: a 422, whatever route let it through.
    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        log.info("refused a value the database cannot hold on %s", request.url.path)
        return _render(request, 422, "invalid_value", "a value is out of range or malformed")

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        return _render(request, 422, "invalid_value", "a value is out of range")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}.get(
            exc.status_code, "http_error"
        )
        return _render(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Never a stack trace to the client: log it, answer with a plain 500.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _render(request, 500, "internal_error", "something went wrong on our side")

    # Added first, so it sits innermost: it answers an unexpected error itself. Under
    # test the error is raised again after the answer, so TestClient shows the traceback.
    settings = getattr(app.state, "settings", None)
    app.add_middleware(UnexpectedErrorMiddleware, reraise=bool(getattr(settings, "testing", False)))


class UnexpectedErrorMiddleware:
    """Answers an unhandled error with the plain 500 and keeps the connection.

    Starlette's outermost error middleware re-raises after answering, and the server
    then closes the keep-alive connection: a client (or a proxy) would lose every
    request queued on it. Here the error ends with the response.
    """

    def __init__(self, app: ASGIApp, reraise: bool = False) -> None:
        self.app = app
        self.reraise = reraise

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            request = Request(scope)
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = _render(request, 500, "internal_error", "something went wrong on our side")
            await response(scope, receive, send)
            if self.reraise:
                raise
