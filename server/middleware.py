"""ASGI middleware: security headers and the anonymous visitor cookie for CSRF."""

from __future__ import annotations

import asyncio
import secrets
import weakref
from http.cookies import CookieError, SimpleCookie

from starlette.datastructures import MutableHeaders
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
