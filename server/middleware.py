"""ASGI middleware: security headers and the anonymous visitor cookie for CSRF."""

from __future__ import annotations

import asyncio
import json
import secrets
import weakref
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline scripts or styles, nothing from elsewhere: clinic networks may be closed,
# and a strict policy blunts script injection into pages that show patient data.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ANON_COOKIE = "dari_anon"


class SecurityHeadersMiddleware:
    """Adds the headers every response needs, and the anonymous CSRF cookie if missing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                try:
                    cookies.load(value.decode("latin-1"))
                except CookieError:  # a malformed Cookie header must not break the request
                    pass
        new_anon = None if ANON_COOKIE in cookies else secrets.token_urlsafe(24)
        if new_anon:
            scope.setdefault("state", {})["anon_nonce"] = new_anon
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault(
                    "Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)"
                )
                if new_anon:
                    flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
                    headers.append("Set-Cookie", f"{ANON_COOKIE}={new_anon}{flags}")
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestGate:
    """Caps how many HTTP requests are inside the app at once, until their response starts.

    A request holds its database connection (and, on SQLite, the write lock: BEGIN
    IMMEDIATE, see server.db) across several thread-pool hops: dependencies, handler.
    With more simultaneous requests than pool threads or connections, every thread can
    end up waiting for a connection or the lock while the holders wait for a thread:
    starvation, then "database is locked" or pool timeouts. Queuing on the event loop
    instead keeps every admitted request able to finish. Static files and WebSockets
    pass freely.
    """

    def __init__(
        self, app: ASGIApp, limit: int = 1, free_prefixes: tuple[str, ...] = ("/static/",)
    ) -> None:
        self.app = app
        self.limit = limit
        self.free_prefixes = free_prefixes
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.free_prefixes):
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()  # one gate per loop (tests run several loops)
        gate = self._gates.setdefault(loop, asyncio.Semaphore(self.limit))
        await gate.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                gate.release()

        async def send_and_release(message: Message) -> None:
            # The request's transaction commits before its response starts
            # (server.db.SessionDep), so a slow download to a weak rural link
            # does not hold a place at the gate.
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_and_release)
        finally:
            release()


class InputGuard:
    """Refuses NUL bytes in the path, the query string and JSON or form bodies (422).

    PostgreSQL cannot store a NUL in a text column; refusing it here names the field
    instead of failing deep inside a query. File uploads (multipart) pass untouched.
    """

    def __init__(self, app: ASGIApp, max_body: int = 2 * 1024 * 1024) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        field = _nul_in_query(scope)
        if field is None and "\x00" in scope.get("path", ""):
            field = "path"
        if field is not None:
            await _refuse(scope, receive, send, field)
            return
        if scope["type"] != "http" or not _guarded_body(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_body:
                break
        body = b"".join(chunks)
        field = _nul_in_body(scope, body) if not more else None
        if field is not None:
            await _refuse(scope, receive, send, field)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": more}
            return await receive()

        await self.app(scope, replay, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _guarded_body(scope: Scope) -> bool:
    content_type = _header(scope, b"content-type").lower()
    return content_type.startswith(("application/json", "application/x-www-form-urlencoded"))


def _nul_in_query(scope: Scope) -> str | None:
    raw: bytes = scope.get("query_string", b"")
    if b"%00" not in raw.lower() and b"\x00" not in raw:
        return None
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "") or "query"
    return "query"


def _nul_in_body(scope: Scope, body: bytes) -> str | None:
    if b"\x00" not in body and b"\\u0000" not in body and b"%00" not in body.lower():
        return None
    if _header(scope, b"content-type").lower().startswith("application/json"):
        try:
            return _nul_in_json(json.loads(body), "")
        except (ValueError, RecursionError):
            return None  # malformed JSON: the validation error will say so
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "") or "body"
    return None


def _nul_in_json(value: Any, path: str) -> str | None:
    """The dotted path of the first string (or key) holding a NUL byte."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return child.replace("\x00", "")
            found = _nul_in_json(item, child)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_in_json(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, field: str) -> None:
    message = f"{field}: must not contain a NUL character"
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = {"error": {"code": "validation_error", "message": message, "field": field}}
    response = JSONResponse(body, status_code=422)
    await response(scope, receive, send)
