"""One error type for the whole server, rendered by one set of handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.render import render_error_page

log = logging.getLogger("dari.errors")

# What a page says of a refused value whose field it cannot point at (web.po has it).
INVALID = "Some of what was entered is not valid; check the form and try again."


def english(params: dict[str, Any]) -> dict[str, Any]:
    """The values as the English message shows them: a tuple is a choice ("gp or specialist");
    pages translate each item and the word between them (web/render.translate_message)."""
    return {
        name: " or ".join(str(item) for item in value) if isinstance(value, tuple) else value
        for name, value in params.items()
    }


class AppError(Exception):
    """A refusal with a stable code, a human message and its HTTP status.

    `message` is English and doubles as the catalog's msgid: pages show it translated
    (`%(name)s` placeholders filled from `params` after translating); `field` names the
    form or JSON field the refusal is about, so a page can mark it and keep the input."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        field: str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.template = message
        self.params = dict(params or {})
        self.message = message % english(self.params) if self.params else message
        super().__init__(self.message)
        self.code = code
        self.status = status
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}
        # A refusal worth an audit event of its own (a read refused to an outsider); it is
        # written after the request's transaction has rolled back (install_error_handlers).
        self.audit_denied: dict[str, Any] | None = None


class NotFound(AppError):
    def __init__(self, what: str = "resource") -> None:
        # One message whatever is missing: a 404 says no more than that (and is translated).
        super().__init__("not_found", "not found", 404, extra={"what": what})


class Forbidden(AppError):
    def __init__(
        self, message: str = "you may not do this", *, params: dict[str, Any] | None = None
    ) -> None:
        super().__init__("forbidden", message, 403, params=params)


class Conflict(AppError):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        params: dict[str, Any] | None = None,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(code, message, 409, params=params, field=field, extra=extra)


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


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The API's error shape: a stable code, the English message and, when the refusal is
    about one field, its name (`field`), so that a client can mark it and translate."""
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return {"error": body}


def _render(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    template: str | None = None,
    params: dict[str, Any] | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    if wants_html(request):
        return render_error_page(
            request, status, code, template or message, headers=headers, params=params
        )
    return JSONResponse(
        error_body(code, message, field, **extra), status_code=status, headers=headers
    )


def _record_denied(request: Request, denied: dict[str, Any]) -> None:
    """A refused read as an audit event, in a transaction of its own (the request's was
    rolled back with the refusal, and nothing else of it may be kept)."""
    # Imported here: these domains import this module.
    from server.accounts.deps import client_ip
    from server.audit import service as audit

    named = ("action", "actor_id", "object_type", "object_id", "organisation_id")
    detail = {key: value for key, value in denied.items() if key not in named}
    try:
        with Session(request.app.state.engine) as session:
            audit.record(
                session,
                str(denied.get("action", "access.denied")),
                actor_id=denied.get("actor_id"),
                ip=client_ip(request),
                object_type=str(denied.get("object_type", "")),
                object_id=str(denied.get("object_id", "")),
                organisation_id=denied.get("organisation_id"),
                detail=detail,
            )
            session.commit()
    except Exception:
        # The refusal is answered whatever happens to its record.
        log.exception("could not record a refused read")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        if exc.audit_denied is not None:
            await run_in_threadpool(_record_denied, request, exc.audit_denied)
        return _render(
            request,
            exc.status,
            exc.code,
            exc.message,
            template=exc.template,
            params=exc.params,
            field=exc.field,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        fields = []
        for err in exc.errors():
            location = [
                str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path")
            ]
            fields.append({"field": ".".join(location), "message": err.get("msg", "invalid")})
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid input"
        first = fields[0]["field"] if fields else None
        # Pages get one translated sentence (the field names are not for people); the API
        # the detail, with the first field named as in every other refusal.
        return _render(
            request,
            422,
            "validation_error",
            summary,
            template=INVALID,
            field=first,
            fields=fields,
        )

    # A value the database cannot hold (a string with a NUL byte, a number beyond its
    # column) is the client's mistake, not ours: a 422, whatever route let it through.
    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        log.info("refused a value the database cannot hold on %s", request.url.path)
        return _render(
            request, 422, "invalid_value", "a value is out of range or malformed", template=INVALID
        )

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        return _render(request, 422, "invalid_value", "a value is out of range", template=INVALID)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}.get(
            exc.status_code, "http_error"
        )
        texts = {404: "not found", 405: "method not allowed", 401: "please log in"}
        return _render(
            request,
            exc.status_code,
            code,
            str(exc.detail),
            template=texts.get(exc.status_code, str(exc.detail)),
            headers=dict(exc.headers) if exc.headers else None,
        )

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
