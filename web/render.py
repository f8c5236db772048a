"""Rendering pages: one Jinja2 environment, the request's language, user and CSRF token.

This module is the one seam between the server's domains and `web/`: domains import
`render` (and the translation helpers re-exported here), nothing else from `web/`.
`web/` imports nothing from the server; what a page needs to know about who is
looking (user, saved language, organisation's zone, CSRF token) the server hands
over through `install`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette

from web import i18n
from web.assets import by_hashed_name as static_file
from web.assets import static_url
from web.i18n import N_, SUPPORTED, gettext_for

__all__ = [
    "LANG_COOKIE",
    "SUPPORTED",
    "N_",
    "Viewer",
    "gettext_for",
    "install",
    "local_time",
    "render",
    "render_error_page",
    "static_file",
    "static_url",
]

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANG_COOKIE = "dari_lang"

env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html", "xml"]),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
env.globals["static_url"] = static_url
# For pages that include another domain's optional part (the call page's notes panel).
# The i18n extension adds this method at run time; the real catalogs come per request.
env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, as the server knows them."""

    user: Any = None  # shown by the templates (name, role); None before login
    locale: str | None = None  # the language saved for the user
    timezone: str | None = None  # the zone of the user's organisation
    csrf_token: str = ""


ViewerProvider = Callable[[Request], Viewer]
ANONYMOUS = Viewer()


def install(app: Starlette, viewer: ViewerProvider) -> None:
    """The server tells the pages who is looking (called once, when the app is built)."""
    app.state.page_viewer = viewer


def viewer_of(request: Request) -> Viewer:
    provider: ViewerProvider | None = getattr(request.app.state, "page_viewer", None)
    return provider(request) if provider is not None else ANONYMOUS


def request_locale(request: Request, viewer: Viewer) -> str:
    settings = request.app.state.settings
    return i18n.pick_locale(
        request.cookies.get(LANG_COOKIE),
        viewer.locale,
        request.headers.get("accept-language", ""),
        settings.default_locale,
    )


def local_time(
    value: datetime | None, locale: str, tz: str = "Asia/Seoul", fmt: str = "short"
) -> str:
    """A UTC datetime shown in the user's zone and language."""
    if value is None:
        return ""
    return format_datetime(value.astimezone(ZoneInfo(tz)), format=fmt, locale=locale)


def page_timezone(viewer: Viewer, default: str) -> str:
    """The zone of the user's organisation (the clinic's clock), else the default zone."""
    if not viewer.timezone:
        return default
    try:
        ZoneInfo(viewer.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return default
    return viewer.timezone


def context_for(request: Request, **extra: Any) -> dict[str, Any]:
    viewer = viewer_of(request)
    locale = request_locale(request, viewer)
    gettext = i18n.gettext_for(locale)
    timezone = page_timezone(viewer, request.app.state.settings.default_timezone)
    return {
        "request": request,
        "user": viewer.user,
        "locale": locale,
        "csrf_token": viewer.csrf_token,
        "gettext": gettext,
        "_": gettext,
        "ngettext": i18n.ngettext_for(locale),
        "timezone": timezone,
        "when": lambda value, fmt="short": local_time(value, locale, timezone, fmt),
        **extra,
    }


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> HTMLResponse:
    html = env.get_template(template).render(context_for(request, **extra))
    return HTMLResponse(html, status_code=status, headers=headers)


def render_error_page(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        status=status,
        headers=headers,
        status_code=status,
        code=code,
        message=message,
    )
