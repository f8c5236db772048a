"""notes.js in Chromium: the same OT as Python, and two pages typing into one note."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route
from sqlmodel import Session

from server.notes.ot import TextOperation, diff
from tests.browser_support import logged_in_page
from tests.notes.factories import consult_with_pair
from tests.notes.sim import START, script_from, type_runs
from tests.notes.test_interleaving import check

pytestmark = pytest.mark.browser
OT_JS = Path(__file__).resolve().parents[2] / "web" / "static" / "notes" / "ot.js"
ALPHABET = "ab한글😀\n🩺x"


def _random_op(rng: random.Random, doc: str) -> TextOperation:
    op = TextOperation()
    i = 0
    while i < len(doc):
        n = rng.randint(1, max(1, len(doc) - i))
        kind = rng.random()
        if kind < 0.4:
            op.retain(n)
        elif kind < 0.7:
            op.delete(n)
        else:
            op.insert("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 3))))
            continue
        i += n
    if rng.random() < 0.5:
        op.insert("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 3))))
    return op


def _random_doc(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


@pytest.fixture
def js_page(browser: Browser) -> Iterator[Page]:  # noqa: F811
    """A page with the OT module (web/static/notes/ot.js) as `window.DariOT`."""
    page = browser.new_page()

    def serve(route: Route) -> None:
        if route.request.url.endswith("/ot.js"):
            route.fulfill(body=OT_JS.read_text(), content_type="text/javascript")
        else:
            route.fulfill(
                body='<!doctype html><title>ot</title><script type="module">'
                'import * as ot from "./ot.js"; window.DariOT = ot;</script>',
                content_type="text/html",
            )

    page.route("http://ot.test/**", serve)
    page.goto("http://ot.test/")
    page.wait_for_function("() => window.DariOT !== undefined")
    yield page
    page.close()


def test_js_transform_compose_apply_match_python(js_page: Page) -> None:
    rng = random.Random(7)
    cases = []
    for _ in range(400):
        doc = _random_doc(rng)
        a, b = _random_op(rng, doc), _random_op(rng, doc)
        a_first = rng.random() < 0.5
        a2, b2 = TextOperation.transform(a, b, a_first)
        after_a = a.apply(doc)
        c = _random_op(rng, after_a)
        cases.append(
            {
                "doc": doc,
                "a": a.to_json(),
                "b": b.to_json(),
                "c": c.to_json(),
                "first": a_first,
                "expect": {
                    "a2": a2.to_json(),
                    "b2": b2.to_json(),
                    "ab": b2.apply(after_a),
                    "ac": a.compose(c).to_json(),
                    "diff": diff(doc, after_a).to_json(),
                },
            }
        )
    results = js_page.evaluate(
        """(cases) => cases.map((k) => {
            const T = DariOT.TextOperation;
            const a = T.fromJSON(k.a), b = T.fromJSON(k.b), c = T.fromJSON(k.c);
            const [a2, b2] = T.transform(a, b, k.first);
            return {a2: a2.toJSON(), b2: b2.toJSON(), ab: b2.apply(a.apply(k.doc)),
                    ac: a.compose(c).toJSON(), diff: DariOT.diff(k.doc, a.apply(k.doc)).toJSON()};
        })""",
        cases,
    )
    for case, got in zip(cases, results, strict=True):
        assert got == case["expect"], json.dumps(case, ensure_ascii=False)


@pytest.mark.parametrize("writers", [2, 3])
def test_js_client_replays_the_interleaving_cases_like_python(js_page: Page, writers: int) -> None:
    """500 generated cases per writer count (tests/notes/test_interleaving.py's scripts, from
    a seeded generator): every client's inputs go through notes/ot.js's Client and caret
    rule, which must send, hold and show exactly what Python's did."""
    rng = random.Random(1300 + writers)
    cases = []
    for _ in range(500):
        ids = rng.sample(["a7", "k2", "x0"], writers)
        starts = [rng.randint(1, 3) for _ in range(writers)]
        runs = type_runs(ids, starts, script_from(rng, rng.randint(5, 120)))
        check(runs)
        cases.append({"ids": ids, "starts": starts, "traces": runs.net.trace})
    mismatches = js_page.evaluate(
        """([start, cases]) => {
            const T = DariOT.TextOperation, bad = [];
            const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
            cases.forEach((k, n) => k.ids.forEach((id, i) => {
                const c = new DariOT.Client(id, start, 0);
                let caret = k.starts[i];
                k.traces[i].forEach((e, step) => {
                    let out, doc = null;
                    if (e.kind === "local") {
                        out = c.local(T.fromJSON(e.op)) || null;
                        caret = e.caret;
                    } else if (e.kind === "receive") {
                        const r = c.receive(e.msg);
                        out = r.send;
                        if (r.applied) caret = DariOT.transformCaret(
                            r.applied, caret, DariOT.first(String(e.msg.client), id));
                        doc = c.doc;
                        if (doc !== e.doc || caret !== e.caret) bad.push([n, i, step, "doc"]);
                    } else {
                        out = c.pending();
                    }
                    if (!same(out, e.out)) bad.push([n, i, step, out, e.out]);
                });
            }));
            return bad;
        }""",
        [START, cases],
    )
    assert mismatches == []


def test_two_pages_typing_at_once_end_with_the_same_text(
    browser: Browser,  # noqa: F811
    live_server: str,
    db: Session,
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    url = f"/consults/{consult.public_id}/notes"
    pages = [logged_in_page(browser, live_server, user) for user in (gp, specialist)]
    try:
        for page in pages:
            page.goto(url)
            page.wait_for_selector("[data-notes-consult][data-state=saved]")
        areas = [page.locator("[data-notes-text]") for page in pages]
        for area in areas:
            area.click()
        words_gp, words_sp = "혈압 150/90 😀 ", "ECG: ST elevation "
        for i in range(max(len(words_gp), len(words_sp))):
            if i < len(words_gp):
                pages[0].keyboard.type(words_gp[i])
            if i < len(words_sp):
                pages[1].keyboard.type(words_sp[i])
        for page in pages:
            page.wait_for_selector("[data-notes-consult][data-state=saved]", timeout=10000)
        pages[0].wait_for_function(
            "([a]) => a.value.length >= 30", arg=[areas[0].element_handle()], timeout=10000
        )

        def texts() -> list[str]:
            return [area.input_value() for area in areas]

        for _ in range(100):
            a, b = texts()
            if a == b and len(a) == len(words_gp) + len(words_sp):
                break
            pages[0].wait_for_timeout(100)
        a, b = texts()
        assert a == b
        # Every keystroke of both is there, in each author's own order.
        assert sorted(a) == sorted(words_gp + words_sp)
        assert a.count("😀") == 1
        # Each sees the other in the presence line.
        presence = pages[0].text_content("[data-notes-presence]") or ""
        assert specialist.name in presence
        assert gp.name in (pages[1].text_content("[data-notes-presence]") or "")
    finally:
        for page in pages:
            page.context.close()


def _state(page: Page) -> str:
    return page.get_attribute("[data-notes-consult]", "data-state") or ""


def test_offline_page_keeps_editing_and_syncs_both_ways_on_reconnect(
    browser: Browser,  # noqa: F811
    live_server: str,
    db: Session,
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    url = f"/consults/{consult.public_id}/notes"
    gp_page, sp_page = (logged_in_page(browser, live_server, u) for u in (gp, specialist))
    try:
        for page in (gp_page, sp_page):
            page.goto(url)
            page.wait_for_selector("[data-notes-consult][data-state=saved]")
        gp_page.click("[data-notes-text]")
        gp_page.keyboard.type("history. ")
        sp_page.wait_for_function(
            "() => document.querySelector('[data-notes-text]').value === 'history. '"
        )
        # The GP's link drops.
        gp_page.context.set_offline(True)
        gp_page.evaluate("document.querySelector('[data-notes-consult]').dariNotes.ws.drop()")
        gp_page.wait_for_selector("[data-notes-consult][data-state^=offline]")
        gp_page.keyboard.type("offline 오프라인 ")
        assert _state(gp_page) == "offline_pending"
        sp_page.click("[data-notes-text]")
        sp_page.keyboard.press("End")
        sp_page.keyboard.type("plan: refer.")
        sp_page.wait_for_selector("[data-notes-consult][data-state=saved]")
        gp_page.wait_for_timeout(1500)  # minutes in real life; the page keeps trying
        assert _state(gp_page).startswith("offline")
        gp_page.context.set_offline(False)
        gp_page.wait_for_selector("[data-notes-consult][data-state=saved]", timeout=40000)
        sp_page.wait_for_function(
            "() => document.querySelector('[data-notes-text]').value.includes('오프라인')",
            timeout=10000,
        )
        gp_text = gp_page.input_value("[data-notes-text]")
        sp_text = sp_page.input_value("[data-notes-text]")
        assert gp_text == sp_text
        for piece in ("history. ", "offline 오프라인 ", "plan: refer."):
            assert gp_text.count(piece) == 1
        # The specialist starts the report draft from a selection of the note.
        sp_page.evaluate(
            "() => { const t = document.querySelector('[data-notes-text]');"
            " const i = t.value.indexOf('plan'); t.focus(); t.setSelectionRange(i, i + 5); }"
        )
        sp_page.click("[data-notes-draft]")
        sp_page.wait_for_function("() => document.getElementById('notes-draft').value !== ''")
        assert sp_page.input_value("#notes-draft") == "plan:"
    finally:
        for page in (gp_page, sp_page):
            page.context.close()
