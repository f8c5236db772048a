"""Telling signaling that login sessions ended, so their sockets close everywhere.

Runs as a background task of the response: after the request's transaction has
committed (server.db), so a socket that reconnects at once finds the session ended.
The signaling service publishes it on the broker: every process closes its sockets
of those sessions within the broker's delivery time.
"""

from __future__ import annotations

import re

from fastapi import BackgroundTasks, Request


def announce_ended(
    request: Request, tasks: BackgroundTasks, user_id: int, session_ids: list[int] | None
) -> None:
    """`session_ids` None: every session of the user (deactivation, revoke)."""
    service = getattr(request.app.state, "signaling", None)
    if service is None:
        return
    if session_ids is None:
        tasks.add_task(service.end_sessions, user_id, None)
        return
    for session_id in session_ids:
        tasks.add_task(service.end_sessions, user_id, str(session_id))


_BROWSERS = (
    ("Edg/", "Edge"),
    ("Whale/", "Whale"),
    ("SamsungBrowser", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_of(user_agent: str) -> str:
    """A short, readable device name from a User-Agent ("Chrome · Windows")."""
    browser = next((name for key, name in _BROWSERS if key in user_agent), "")
    system = next((name for key, name in _SYSTEMS if key in user_agent), "")
    if browser or system:
        return " · ".join(part for part in (browser, system) if part)
    return re.sub(r"[^\w ./-]", "", user_agent)[:40]
