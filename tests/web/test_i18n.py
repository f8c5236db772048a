"""Every message in the code and templates has a Korean translation, with the same placeholders."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from web import i18n

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "web" / "locale" / "ko" / "LC_MESSAGES"
SOURCES = ("server", "signaling", "web")
METHOD_MAP = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def extracted() -> Iterator[tuple[str, str, int]]:
    """(msgid, file, line) for every message Babel's extractors find in our sources."""
    for source in SOURCES:
        directory = ROOT / source
        if not directory.is_dir():
            continue
        for filename, lineno, message, _comments, _context in extract_from_dir(
            directory, METHOD_MAP, OPTIONS
        ):
            ids = message if isinstance(message, tuple) else (message,)
            for msgid in ids:
                if msgid:
                    yield msgid, f"{source}/{filename}", lineno


def korean_catalogs() -> dict[str, dict[str, str]]:
    """file name → {msgid: msgstr} for every Korean .po file."""
    catalogs: dict[str, dict[str, str]] = {}
    for path in sorted(LOCALE_DIR.glob("*.po")):
        with path.open("rb") as handle:
            po = read_po(handle, locale="ko")
        catalogs[path.name] = {str(m.id): str(m.string) for m in po if m.id and not m.fuzzy}
    return catalogs


def test_extraction_finds_the_messages_of_base_and_call_pages() -> None:
    ids = {msgid for msgid, _, _ in extracted()}
    # A broken extractor set-up would find nothing and pass everything below.
    assert {"Log in", "Hang up", "Continue in writing", "gp", "health_centre"} <= ids


def test_every_message_has_a_korean_translation() -> None:
    translated = {
        msgid for catalog in korean_catalogs().values() for msgid, text in catalog.items() if text
    }
    missing = sorted(
        {
            f"{where}:{line}: {msgid!r}"
            for msgid, where, line in extracted()
            if msgid not in translated
        }
    )
    assert not missing, "untranslated messages:\n" + "\n".join(missing)


def test_translations_keep_the_placeholders() -> None:
    wrong = [
        f"{name}: {msgid!r}"
        for name, catalog in korean_catalogs().items()
        for msgid, text in catalog.items()
        if text and sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(text))
    ]
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_no_message_is_translated_differently_in_two_catalogs() -> None:
    seen: dict[str, tuple[str, str]] = {}
    conflicts = []
    for name, catalog in korean_catalogs().items():
        for msgid, text in catalog.items():
            if msgid in seen and text and seen[msgid][1] != text:
                conflicts.append(f"{msgid!r}: {seen[msgid][0]} vs {name}")
            if text:
                seen.setdefault(msgid, (name, text))
    assert not conflicts, "conflicting translations:\n" + "\n".join(conflicts)


@pytest.mark.parametrize(
    ("message", "korean"),
    [("Log in", "로그인"), ("gp", "일반의"), ("Hang up", "통화 종료")],
)
def test_runtime_catalog_translates(message: str, korean: str) -> None:
    assert i18n.gettext_for("ko")(message) == korean
    assert i18n.gettext_for("en")(message) == message


def test_placeholders_are_filled_after_translation() -> None:
    assert i18n.gettext_for("ko")("%(kbps)s kbps", kbps=300) == "300 kbps"
