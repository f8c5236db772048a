"""Every message in the code and templates has a Korean translation, with the same
placeholders; the compiled catalogs, plurals and the browser's language at run time."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient
from sqlmodel import Session

from tests.factories import login, make_specialty
from tests.scheduling.factories import make_hospital, make_rule, make_specialist
from web import catalogs, i18n
from web.render import env

ROOT = Path(__file__).resolve().parents[2]
LOCALE_DIR = ROOT / "web" / "locale" / "ko" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
MINUTES = ("%(num)d minute", "%(num)d minutes")


def extracted() -> Iterator[tuple[str, str, int]]:
    """(msgid, file, line) for every message Babel's extractors find in our sources."""
    for message, where, lineno in catalogs.extract_messages():
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            if msgid:
                yield msgid, where, lineno


def korean_catalogs() -> dict[str, dict[str, tuple[str, ...]]]:
    """file name → {msgid: msgstr forms}, a plural message under its singular and plural id."""
    catalogs_: dict[str, dict[str, tuple[str, ...]]] = {}
    for path in sorted(LOCALE_DIR.glob("*.po")):
        with path.open("rb") as handle:
            po = read_po(handle, locale="ko")
        entries: dict[str, tuple[str, ...]] = {}
        for m in po:
            if not m.id or m.fuzzy:
                continue
            ids = m.id if isinstance(m.id, tuple) else (m.id,)
            forms = m.string if isinstance(m.string, tuple) else (m.string,)
            forms = tuple(str(form) for form in forms) if all(forms) else ()
            entries.update({str(msgid): forms for msgid in ids})
        catalogs_[path.name] = entries
    return catalogs_


def test_extraction_finds_the_messages_of_base_and_call_pages() -> None:
    ids = {msgid for msgid, _, _ in extracted()}
    # A broken extractor set-up would find nothing and pass everything below.
    assert {"Log in", "Hang up", "Continue in writing", "gp", "health_centre", *MINUTES} <= ids


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
        for msgid, forms in catalog.items()
        for text in forms
        if sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(text))
    ]
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


def test_no_message_is_translated_differently_in_two_catalogs() -> None:
    seen: dict[str, tuple[str, tuple[str, ...]]] = {}
    conflicts = []
    for name, catalog in korean_catalogs().items():
        for msgid, text in catalog.items():
            if msgid in seen and text and seen[msgid][1] != text:
                conflicts.append(f"{msgid!r}: {seen[msgid][0]} vs {name}")
            if text:
                seen.setdefault(msgid, (name, text))
    assert not conflicts, "conflicting translations:\n" + "\n".join(conflicts)


def render(source: str, locale: str, **values: object) -> str:
    """A template rendered through the app's Jinja environment in one language."""
    return env.from_string(source).render(translations=i18n.translations(locale), **values)


@pytest.mark.parametrize(
    ("message", "korean"),
    [("Log in", "로그인"), ("gp", "일반의"), ("Hang up", "통화 종료")],
)
def test_runtime_catalog_translates(message: str, korean: str) -> None:
    assert i18n.translations("ko").gettext(message) == korean
    assert i18n.translations("en").gettext(message) == message
    assert render("{{ _(message) }}", "ko", message=message) == korean


def test_placeholders_are_filled_after_translation() -> None:
    assert render('{{ _("%(kbps)s kbps", kbps=300) }}', "ko") == "300 kbps"
    # The filled-in value is escaped; so is the message itself (text, never HTML).
    assert render('{{ _("%(name)s left the call.", name=who) }}', "en", who="<b>") == (
        "&lt;b&gt; left the call."
    )
    assert render("{{ _(value) }}", "en", value="<i>x</i>") == "&lt;i&gt;x&lt;/i&gt;"


def test_every_domain_is_merged_into_one_catalog() -> None:
    korean = i18n.translations("ko")
    # One message from each .po file: messages, web, consults, notes, scheduling.
    for message in ("Log in", "Hang up", "Audit log", "Shared notes", "Weekly hours"):
        assert korean.gettext(message) != message, message


@pytest.mark.parametrize(
    ("locale", "n", "expected"),
    [("en", 1, "1 minute"), ("en", 2, "2 minutes"), ("ko", 1, "1분"), ("ko", 2, "2분")],
)
def test_plural_message_follows_the_language(locale: str, n: int, expected: str) -> None:
    assert i18n.translations(locale).ngettext(*MINUTES, n) % {"num": n} == expected
    assert render('{{ ngettext("%(num)d minute", "%(num)d minutes", n) }}', locale, n=n) == expected


def test_roster_page_shows_slot_length_with_plurals(client: TestClient, db: Session) -> None:
    specialist = make_specialist(db, make_hospital(db), make_specialty(db))
    login(client, specialist)
    make_rule(db, specialist, 1, slot_minutes=1)
    make_rule(db, specialist, 2, slot_minutes=2)
    korean = client.get("/schedule/roster", headers={"Accept": "text/html"}).text
    assert "<td>1분</td>" in korean and "<td>2분</td>" in korean
    client.cookies.set("dari_lang", "en")
    english = client.get("/schedule/roster", headers={"Accept": "text/html"}).text
    assert "<td>1 minute</td>" in english and "<td>2 minutes</td>" in english


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("en-US,en;q=0.9,ko;q=0.8", "en"),
        ("ko-KR,ko;q=0.9", "ko"),
        ("fr", "ko"),
        ("", "ko"),
        ("en;q=0.5, ko", "ko"),  # q-values, not the order written, decide
        ("fr, en-GB;q=0.3", "en"),
        ("en;q=0, ko-KR;q=0.1", "ko"),  # q=0: not English
        ("kok, *", "ko"),  # Konkani is not Korean; "*" names no language
    ],
)
def test_browser_language_is_negotiated(header: str, locale: str) -> None:
    assert i18n.pick_locale(None, None, header, "ko") == locale


def test_chosen_language_then_user_setting_then_browser() -> None:
    english_browser = "en-US,en;q=0.9"
    assert i18n.pick_locale("ko", "en", english_browser, "ko") == "ko"  # the cookie
    assert i18n.pick_locale(None, "ko", english_browser, "ko") == "ko"  # the user's setting
    assert i18n.pick_locale("xx", None, english_browser, "ko") == "en"  # the browser


def test_accept_language_header_chooses_the_page_language(client: TestClient) -> None:
    english = client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9,ko;q=0.8"})
    assert '<html lang="en">' in english.text and "Log in" in english.text
    korean = client.get("/login", headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    assert '<html lang="ko">' in korean.text and "로그인" in korean.text
    french = client.get("/login", headers={"Accept-Language": "fr"})
    assert '<html lang="ko">' in french.text


def test_missing_or_stale_catalog_is_detected_and_compiled(tmp_path: Path) -> None:
    messages = tmp_path / "ko" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    po = messages / "scheduling.po"
    shutil.copy(LOCALE_DIR / "scheduling.po", po)
    assert i18n.stale_catalogs(tmp_path) == [po]  # no .mo
    with pytest.raises(i18n.CatalogsNotCompiled) as missing:
        i18n.require_compiled(tmp_path)
    assert "ko/LC_MESSAGES/scheduling.po" in str(missing.value)
    assert "make i18n" in str(missing.value) and "\n" not in str(missing.value)

    assert catalogs.compile_catalogs(tmp_path) == [po]
    assert i18n.stale_catalogs(tmp_path) == []
    i18n.require_compiled(tmp_path)
    assert catalogs.compile_catalogs(tmp_path) == []  # nothing to do

    mo = po.with_suffix(".mo")
    edited = mo.stat().st_mtime + 5
    os.utime(po, (edited, edited))  # the .po edited after compiling
    assert i18n.stale_catalogs(tmp_path) == [po]
    with pytest.raises(i18n.CatalogsNotCompiled):
        i18n.require_compiled(tmp_path)
    catalogs.compile_catalogs(tmp_path)
    assert i18n.stale_catalogs(tmp_path) == []


def test_compiling_refuses_a_broken_catalog(tmp_path: Path) -> None:
    messages = tmp_path / "ko" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "broken.po").write_text(
        'msgid ""\nmsgstr ""\n"Language: ko\\n"\n"Plural-Forms: nplurals=1; plural=0;\\n"\n\n'
        'msgid "%(num)d day"\nmsgid_plural "%(num)d days"\n'
        'msgstr[0] "%(num)d일"\nmsgstr[1] "%(num)d일"\n',
        encoding="utf-8",
    )
    with pytest.raises(catalogs.CatalogError, match="broken.po"):
        catalogs.compile_catalogs(tmp_path)
    assert not (messages / "broken.mo").exists()


def test_the_repository_catalogs_are_compiled() -> None:
    # The test session compiles them (conftest), as `make` does before the app starts.
    assert i18n.stale_catalogs() == []


def test_update_appends_only_the_new_messages(tmp_path: Path) -> None:
    shutil.copytree(LOCALE_DIR.parent, tmp_path / "ko")
    web_po = tmp_path / "ko" / "LC_MESSAGES" / "web.po"
    original = web_po.read_text(encoding="utf-8")
    without = original.replace('msgid "Hang up"\nmsgstr "통화 종료"\n', "")
    assert without != original
    web_po.write_text(without, encoding="utf-8")

    assert catalogs.add_new_messages("web", tmp_path) == {"ko": ["Hang up"]}
    updated = web_po.read_text(encoding="utf-8")
    # The existing entries are kept as written; the new one waits, untranslated.
    assert updated.startswith(without)
    assert 'msgid "Hang up"\nmsgstr ""' in updated[len(without) :]
    assert catalogs.add_new_messages("web", tmp_path) == {}
