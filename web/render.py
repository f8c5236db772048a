"""Rendering pages: one Jinja2 environment, the request's language, user and CSRF token."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.support import NullTranslations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import escape
from sqlalchemy.orm import object_session

from web import i18n
from web.static_files import module_imports, static_url

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


def request_locale(request: Request) -> str:
    user = request_user(request)
    settings = request.app.state.settings
    return i18n.pick_locale(
        request.cookies.get(LANG_COOKIE),
        user.locale if user is not None else None,
        request.headers.get("accept-language", ""),
        settings.default_locale,
    )


def request_user(request: Request) -> Any:
    auth = getattr(request.state, "auth", None)
    return auth[0] if auth else None


def local_time(
    value: datetime | None, locale: str, tz: str = "Asia/Seoul", fmt: str = "short"
) -> str:
    """A UTC datetime shown in the user's zone and language."""
    if value is None:
        return ""
    return format_datetime(value.astimezone(ZoneInfo(tz)), format=fmt, locale=locale)


def user_timezone(request: Request) -> str:
    """The zone of the user's organisation (the clinic's clock), else the default zone."""
    settings = request.app.state.settings
    default: str = settings.default_timezone
    user = request_user(request)
    if user is None:
        return default
    # The request's own session loaded the user: reuse it rather than open a second
    # transaction (on SQLite every transaction takes the write lock).
    session = object_session(user)
    if session is None:
        return default
    from server.accounts.models import Organisation

    organisation = session.get(Organisation, user.organisation_id)
    zone = organisation.timezone if organisation is not None else default
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return default
    return zone


def context_for(request: Request, **extra: Any) -> dict[str, Any]:
    from server.accounts.deps import csrf_for

    locale = request_locale(request)
    timezone = user_timezone(request)
    return {
        "request": request,
        "user": request_user(request),
        "locale": locale,
        "csrf_token": csrf_for(request),
        "translations": i18n.translations(locale),
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
