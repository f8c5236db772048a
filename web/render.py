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

from babel.dates import format_date, format_datetime, get_timezone_name
from babel.support import NullTranslations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import escape
from starlette.applications import Starlette

from web import i18n
from web.assets import by_hashed_name as static_file
from web.assets import module_imports, static_url
from web.i18n import N_, SUPPORTED, CatalogsNotCompiled, require_compiled, translations

__all__ = [
    "CatalogsNotCompiled",
    "LANG_COOKIE",
    "SUPPORTED",
    "N_",
    "Viewer",
    "install",
    "local_time",
    "render",
    "render_error_page",
    "form_error",
    "require_compiled",
    "static_file",
    "static_url",
    "translations",
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
env.globals["module_imports"] = module_imports


def _catalog(context: Context) -> NullTranslations:
    """The render's Babel translations, put in the context by context_for."""
    found = context.get("translations")
    return found if isinstance(found, NullTranslations) else i18n.translations(i18n.SOURCE_LOCALE)


def _fill(context: Context, text: str, variables: dict[str, Any]) -> str:
    # A translation is text, never HTML: escaped, like the values filled into it (they
    # come from the data, and _(value) shows values too).
    if context.eval_ctx.autoescape:
        text = escape(text)
    # Only with values: a message handed to a script keeps its %(name)s for the script.
    return text % variables if variables else text


@pass_context
def _gettext(context: Context, message: str, /, **variables: Any) -> str:
    return _fill(context, _catalog(context).gettext(message), variables)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int, /, **variables: Any) -> str:
    text = _catalog(context).ngettext(singular, plural, n)
    return _fill(context, text, {"num": n, **variables})


@pass_context
def _pgettext(context: Context, msgctxt: str, message: str, /, **variables: Any) -> str:
    return _fill(context, str(_catalog(context).pgettext(msgctxt, message)), variables)


@pass_context
def _npgettext(
    context: Context, msgctxt: str, singular: str, plural: str, n: int, /, **variables: Any
) -> str:
    text = _catalog(context).npgettext(msgctxt, singular, plural, n)
    return _fill(context, text, {"num": n, **variables})


# Jinja's i18n extension with Babel's catalogs, installed once: each render finds its
# language's Translations in the context. _("…", name=value) and ngettext(…, n) (which
# fills %(num)d) format after translating, as the extension's "new style" does, but
# only when given values (not newstyle=True, which would fill the placeholders of the
# messages handed to scripts in data-* attributes).
env.install_gettext_callables(  # type: ignore[attr-defined]
    _gettext, _ngettext, newstyle=False, pgettext=_pgettext, npgettext=_npgettext
)


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
    timezone = page_timezone(viewer, request.app.state.settings.default_timezone)
    return {
        "request": request,
        "user": viewer.user,
        "locale": locale,
        "csrf_token": viewer.csrf_token,
        "translations": i18n.translations(locale),
        "timezone": timezone,
        "when": lambda value, fmt="short": local_time(value, locale, timezone, fmt),
        # A zone as people call it ("한국 시간", "Korean Time"), not its tz database name.
        "zone_name": lambda zone: get_timezone_name(zone, locale=locale) if zone else "",
        # A calendar date (no time, no zone) in the same style as `when`.
        "day": lambda value: format_date(value, format="short", locale=locale) if value else "",
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


GENERIC_REFUSAL = N_("This could not be done. Nothing was changed.")
# Between the items of a tuple value ("gp or specialist"), in the page's language.
CHOICE_WORD = N_("or")


def translate_message(
    catalog: NullTranslations, message: str, params: dict[str, Any] | None = None
) -> str:
    """An error's English message in the page's language: the message is the msgid, the
    values filled in are translated too when the catalog knows them (statuses, fields).
    A message the catalog lacks becomes a generic sentence outside English, so that a
    Korean page never shows an English one (the code is shown beside it)."""
    translated = catalog.gettext(message)
    if translated == message and not _is_source(catalog):
        translated = catalog.gettext(GENERIC_REFUSAL)
    values = {name: _translated(catalog, value) for name, value in (params or {}).items()}
    try:
        return translated % values if values else translated
    except (KeyError, TypeError, ValueError):
        return translated


def _translated(catalog: NullTranslations, value: Any) -> Any:
    if isinstance(value, tuple):
        word = f" {catalog.gettext(CHOICE_WORD)} "
        return word.join(str(_translated(catalog, item)) for item in value)
    return catalog.gettext(value) if isinstance(value, str) and value else value


def _is_source(catalog: NullTranslations) -> bool:
    return catalog is i18n.translations(i18n.SOURCE_LOCALE)


def form_error(request: Request, message: str, params: dict[str, Any] | None = None) -> str:
    """An error's message translated for the page that shows it next to its field."""
    locale = request_locale(request, viewer_of(request))
    return translate_message(i18n.translations(locale), message, params)


def render_error_page(
    request: Request,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> HTMLResponse:
    locale = request_locale(request, viewer_of(request))
    return render(
        request,
        "error.html",
        status=status,
        headers=headers,
        status_code=status,
        code=code,
        message=translate_message(i18n.translations(locale), message, params),
    )
