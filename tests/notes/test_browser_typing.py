"""The notes panel in Chromium: two people at the same place, carets, reload, logout, Korean IME."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute
from sqlmodel import Session, col, select

from server.consults.models import ConsultRequest
from server.notes import service
from server.notes.models import NoteUpdate, SharedNote
from tests.browser_support import logged_in_page
from tests.notes.factories import consult_with_pair

pytestmark = pytest.mark.browser
PANEL = "[data-notes-consult]"
TEXT = "[data-notes-text]"


def _value(page: Page) -> str:
    return page.input_value(TEXT)


def _saved(page: Page, timeout: float = 15000) -> None:
    page.wait_for_selector(f"{PANEL}[data-state=saved]", timeout=timeout)


@pytest.fixture
def pair(
    browser: Browser,  # noqa: F811
    live_server: str,
    db: Session,
) -> Iterator[tuple[str, list[Page], list[str]]]:
    consult, gp, specialist = consult_with_pair(db)
    pages = [logged_in_page(browser, live_server, user) for user in (gp, specialist)]
    url = f"/consults/{consult.public_id}/notes"
    for page in pages:
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(url)
        _saved(page)
    try:
        yield url, pages, [gp.name, specialist.name]
    finally:
        for page in pages:
            page.context.close()


def test_two_people_typing_at_the_end_keep_their_words_whole(
    pair: tuple[str, list[Page], list[str]],
) -> None:
    _, pages, names = pair
    gp, sp = pages
    gp.click(TEXT)
    gp.keyboard.type("Plan: ")
    _saved(gp)
    sp.wait_for_function("() => document.querySelector('[data-notes-text]').value === 'Plan: '")
    for page in pages:
        page.click(TEXT)
        page.keyboard.press("Control+End")
    words = ["아스피린 100mg 하루 한 번, ", "ECG: ST elevation in V2-V4. "]
    for i in range(max(len(w) for w in words)):
        for page, word in zip(pages, words, strict=True):
            if i < len(word):
                page.keyboard.type(word[i])
        if i % 7 == 3 and i < len(words[0]):  # a backspace now and then, retyped at once
            gp.keyboard.press("Backspace")
            gp.keyboard.type(words[0][i])
    for page in pages:
        _saved(page)
    for _ in range(100):
        if _value(gp) == _value(sp) and len(_value(gp)) == len("Plan: ") + sum(map(len, words)):
            break
        gp.wait_for_timeout(100)
    text = _value(gp)
    assert text == _value(sp)
    assert text.startswith("Plan: ")
    for word in words:
        assert word in text, f"{word!r} was interleaved: {text!r}"
    # Each sees the other's caret in the text, with their name, right after their words.
    for page, other, name in ((gp, sp, names[1]), (sp, gp, names[0])):
        caret = page.locator("[data-notes-caret]")
        caret.wait_for()
        assert caret.text_content() == name
        word = words[pages.index(other)]
        expected = len(text[: text.index(word) + len(word)])
        page.wait_for_function(
            "(n) => document.querySelector('[data-notes-caret]').dataset.index === String(n)",
            arg=expected,
            timeout=10000,
        )
        assert caret.is_visible()


def _blockable(page: Page) -> dict[str, bool]:
    """Route the note's socket through the test: while `blocked`, every attempt is closed."""
    state = {"blocked": False}

    def handler(ws: WebSocketRoute) -> None:
        if state["blocked"]:
            ws.close(code=4000, reason="test: link down")
        else:
            ws.connect_to_server()

    page.route_web_socket("**/notes/ws/**", handler)
    return state


def test_unsent_edits_survive_a_reload_and_are_sent_on_reconnect(
    pair: tuple[str, list[Page], list[str]], db: Session
) -> None:
    url, pages, _ = pair
    gp, sp = pages
    link = _blockable(gp)
    gp.reload()
    _saved(gp)
    link["blocked"] = True
    gp.evaluate("document.querySelector('[data-notes-consult]').dariNotes.ws.drop()")
    gp.wait_for_selector(f"{PANEL}[data-state^=offline]")
    gp.click(TEXT)
    gp.keyboard.type("혈압 150/90 (unsent)")
    assert gp.get_attribute(PANEL, "data-state") == "offline_pending"
    kept = gp.evaluate(
        "() => Object.keys(sessionStorage).filter((k) => k.startsWith('dari-notes:')).length"
    )
    assert kept == 1
    # The tab is reloaded while the link is down: the edits come back from sessionStorage.
    gp.reload()
    gp.wait_for_function(
        "() => document.querySelector('[data-notes-text]').value === '혈압 150/90 (unsent)'"
    )
    link["blocked"] = False
    gp.evaluate("document.querySelector('[data-notes-consult]').dariNotes.ws.drop()")
    _saved(gp, timeout=40000)
    sp.wait_for_function(
        "() => document.querySelector('[data-notes-text]').value === '혈압 150/90 (unsent)'"
    )
    assert gp.evaluate("() => Object.keys(sessionStorage).length") == 0
    # The newest note (PostgreSQL returns rows in no set order without ORDER BY).
    note = db.exec(select(SharedNote).order_by(col(SharedNote.id).desc())).first()
    assert note is not None
    db.refresh(note)
    assert service.current_text(db, note) == "혈압 150/90 (unsent)"
    # Sent once, though it was sent before the reload too (same client id and seq).
    ops = db.exec(select(NoteUpdate.op).where(col(NoteUpdate.note_id) == note.id)).all()
    assert sum(json.loads(op).count("혈압 150/90 (unsent)") for op in ops) <= 1


def test_logging_out_forgets_unsent_edits(pair: tuple[str, list[Page], list[str]]) -> None:
    _, pages, _ = pair
    gp = pages[0]
    link = _blockable(gp)
    gp.reload()
    _saved(gp)
    link["blocked"] = True
    gp.evaluate("document.querySelector('[data-notes-consult]').dariNotes.ws.drop()")
    gp.wait_for_selector(f"{PANEL}[data-state^=offline]")
    gp.click(TEXT)
    gp.keyboard.type("patient data")
    assert gp.evaluate("() => Object.keys(sessionStorage).length") == 1
    gp.click("form[action='/logout'] button")
    gp.wait_for_url("**/login**")
    assert gp.evaluate("() => Object.keys(sessionStorage).length") == 0


def test_korean_ime_sends_whole_syllables_through_a_remote_edit(
    pair: tuple[str, list[Page], list[str]], db: Session
) -> None:
    """Hangul typed through an IME (CDP Input.imeSetComposition / insertText): no
    half-composed syllable is ever sent, a remote edit arriving mid-composition does not
    break it, and both sides end with the intended text."""
    _, pages, _ = pair
    gp, sp = pages
    gp.click(TEXT)
    gp.keyboard.type("소견: ")
    _saved(gp)
    sp.wait_for_function("() => document.querySelector('[data-notes-text]').value === '소견: '")
    cdp = gp.context.new_cdp_session(gp)

    def compose(steps: list[str], remote: str | None = None) -> None:
        for n, step in enumerate(steps[:-1]):
            cdp.send(
                "Input.imeSetComposition",
                {"text": step, "selectionStart": len(step), "selectionEnd": len(step)},
            )
            if remote is not None and n == 1:
                # The specialist types at the start while the GP is mid-syllable.
                sp.click(TEXT)
                sp.keyboard.press("Control+Home")
                sp.keyboard.type(remote)
                _saved(sp)
                gp.wait_for_timeout(300)  # it has arrived at the GP's page, held there
        cdp.send("Input.insertText", {"text": steps[-1]})

    gp.keyboard.press("Control+End")
    compose(["ㅎ", "하", "한", "한"], remote="[SP] ")
    compose(["ㄱ", "구", "국", "국"])
    compose(["ㅇ", "어", "어"])
    gp.keyboard.type(" ")
    _saved(gp)
    expected = "[SP] 소견: 한국어 "
    for page in pages:
        page.wait_for_function(
            "(t) => document.querySelector('[data-notes-text]').value === t", arg=expected
        )
    # No stored update ever carried a lone jamo (a half-composed syllable). This test's
    # note, found by its consult, and its updates in revision order (PostgreSQL returns
    # rows in no set order without ORDER BY).
    url, _, _ = pair
    public_id = url.split("/")[2]
    consult = db.exec(select(ConsultRequest).where(ConsultRequest.public_id == public_id)).one()
    note = db.exec(select(SharedNote).where(SharedNote.consult_id == consult.id)).one()
    updates = select(NoteUpdate.op).where(col(NoteUpdate.note_id) == note.id)
    inserted = "".join(
        c
        for op in db.exec(updates.order_by(col(NoteUpdate.revision))).all()
        for c in json.loads(op)
        if isinstance(c, str)
    )
    assert not any(0x3131 <= ord(ch) <= 0x318E for ch in inserted), inserted
    assert "한국어" in inserted
