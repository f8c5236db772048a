"""Translations from gettext catalogs (web/locale), read once at start-up.

Messages are written in English in the code and templates; the Korean catalog
translates them. English needs no catalog: the message id is the English text.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
SUPPORTED = ("ko", "en")


@lru_cache(maxsize=len(SUPPORTED))
def catalog(locale: str) -> dict[str, str]:
    """All of a locale's .po files (one per domain) merged into one lookup table."""
    messages: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            po = read_po(handle, locale=locale)
        messages.update({str(m.id): str(m.string) for m in po if m.id and m.string and not m.fuzzy})
    return messages


def N_(message: str) -> str:
    """Mark a message for extraction only; it is translated where it is shown."""
    return message


# Values the templates show through _(value): role names and organisation kinds.
# Listed here so that the extractor (and the catalog test) knows about them.
DYNAMIC_MESSAGES = (
    N_("gp"),
    N_("specialist"),
    N_("admin"),
    N_("clinic"),
    N_("health_centre"),
    N_("hospital"),
)


def gettext_for(locale: str) -> Callable[..., str]:
    messages = catalog(locale)

    def gettext(message: str, **variables: object) -> str:
        text = messages.get(message, message)
        return text % variables if variables else text

    return gettext


def ngettext_for(locale: str) -> Callable[..., str]:
    gettext = gettext_for(locale)

    def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
        # Korean has one plural form; English picks by n.
        text = gettext(singular if n == 1 else plural)
        return text % {"num": n, **variables}

    return ngettext


def pick_locale(cookie: str | None, user_locale: str | None, accept: str, default: str) -> str:
    """A chosen language wins, then the user's setting, then the browser, then Korean."""
    for candidate in (cookie, user_locale):
        if candidate in SUPPORTED:
            return candidate
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in SUPPORTED:
            return tag
    return default
