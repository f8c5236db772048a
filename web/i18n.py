"""Translations: Babel's compiled catalogs, one merged `Translations` per language.

Messages are written in English in the code and templates; English is the source
language and needs no catalog. Each Korean domain has its catalog in
web/locale/ko/LC_MESSAGES/<domain>.po, compiled to <domain>.mo by `make i18n` (which
`make venv`, `make run` and `make test` run first); the .mo files are not committed.
Plural forms come from the catalog's Plural-Forms header, through Babel.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from babel.core import negotiate_locale
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
SOURCE_LOCALE = "en"
SUPPORTED = ("ko", "en")
# Domains merge into one catalog per language; this one goes first (the others are
# merged into it), so its header (Plural-Forms) is the one that counts.
FIRST_DOMAIN = "messages"
COMPILE_HINT = "run `make i18n` to compile the translation catalogs"


class CatalogsNotCompiled(RuntimeError):
    """A catalog's .mo file is missing or older than its .po file."""


def catalog_files(locale: str, locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """The .po files of a language, FIRST_DOMAIN first, then by domain name."""
    files = sorted((locale_dir / locale / "LC_MESSAGES").glob("*.po"))
    return sorted(files, key=lambda path: path.stem != FIRST_DOMAIN)


def stale_catalogs(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """The .po files whose .mo is missing or older than the .po."""
    return [po for locale in SUPPORTED for po in catalog_files(locale, locale_dir) if is_stale(po)]


def is_stale(po: Path) -> bool:
    mo = po.with_suffix(".mo")
    return not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime


def require_compiled(locale_dir: Path = LOCALE_DIR) -> None:
    """Fail at start-up, in one line, when a catalog has not been compiled since its last edit."""
    stale = stale_catalogs(locale_dir)
    if stale:
        names = ", ".join(str(path.relative_to(locale_dir)) for path in stale)
        raise CatalogsNotCompiled(f"no up-to-date .mo for {names}: {COMPILE_HINT}")


@lru_cache(maxsize=len(SUPPORTED))
def translations(locale: str) -> NullTranslations:
    """All of a language's compiled domains merged into one Babel `Translations`."""
    if locale not in SUPPORTED:
        raise ValueError(f"unsupported locale {locale!r}")
    if locale == SOURCE_LOCALE:
        # The message ids are the English text; plurals by English's rule (n != 1).
        return NullTranslations()
    merged: Translations | None = None
    for po in catalog_files(locale):
        if is_stale(po):
            raise CatalogsNotCompiled(f"no up-to-date .mo for {po.name} ({locale}): {COMPILE_HINT}")
        with po.with_suffix(".mo").open("rb") as handle:
            domain = Translations(handle, domain=po.stem)
        merged = domain if merged is None else merged.merge(domain)
    if merged is None:
        raise CatalogsNotCompiled(f"no catalogs for {locale!r} in {LOCALE_DIR}")
    return merged


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

_LANGUAGE_RANGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


def browser_preferences(accept_language: str) -> list[str]:
    """The language tags of an Accept-Language header, most wanted first (q-values)."""
    weighted = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        # "*" and malformed ranges name no language; q=0 means "not this one".
        if _LANGUAGE_RANGE.match(tag) and quality > 0:
            weighted.append((-quality, position, tag.lower()))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(accept_language: str) -> str | None:
    """The supported language the browser prefers, chosen by Babel, if any."""
    chosen = negotiate_locale(browser_preferences(accept_language), SUPPORTED, sep="-")
    return chosen.lower() if chosen else None


def pick_locale(cookie: str | None, user_locale: str | None, accept: str, default: str) -> str:
    """A chosen language wins, then the user's setting, then the browser, then Korean."""
    for candidate in (cookie, user_locale):
        if candidate in SUPPORTED:
            return candidate
    return negotiate(accept) or default
