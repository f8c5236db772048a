"""inbox.js's `catchUp` in Chromium on the property test's cases: every page trace (the
frames it received, the after_id it sent on each reconnect) replayed through the JS
function must give the same answers as the Python mirror that made it. (Here, not in
tests/signaling, whose autouse fixture is async and Playwright's loop is sync.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from playwright.sync_api import Browser, Page, Route

from tests.signaling.catchup import SCRIPTS, committed_for_page, run_script

pytestmark = pytest.mark.browser
STATIC = Path(__file__).resolve().parents[2] / "web" / "static"


@pytest.fixture
def inbox_page(browser: Browser) -> Iterator[Page]:
    """A blank page with web/static/inbox.js imported as `window.DariInboxModule` (no
    #live element: the inbox itself does not start)."""
    page = browser.new_page()

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix("http://inbox.test/")
        if path.endswith(".js"):
            route.fulfill(body=(STATIC / path).read_text(), content_type="text/javascript")
        else:
            route.fulfill(
                body='<!doctype html><title>inbox</title><script type="module">'
                'import * as inbox from "./inbox.js"; window.DariInboxModule = inbox;</script>',
                content_type="text/html",
            )

    page.route("http://inbox.test/**", serve)
    page.goto("http://inbox.test/")
    page.wait_for_function("() => window.DariInboxModule !== undefined")
    yield page
    page.close()


def _cases() -> list[list[list[Any]]]:
    cases: list[list[list[Any]]] = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(SCRIPTS)
    def collect(script: list[tuple[str, int]]) -> None:
        gate, page = asyncio.run(run_script(script))
        assert sorted(page.handled) == committed_for_page(gate)  # the Python side holds
        cases.append(page.trace)

    collect()
    return cases


def test_js_catch_up_answers_like_python_on_the_generated_cases(inbox_page: Page) -> None:
    # In a thread of its own: Playwright's loop counts as running in this one.
    with ThreadPoolExecutor(1) as pool:
        cases = pool.submit(_cases).result()
    assert len(cases) >= 100 and any(any(s[0] == "hello" and s[1] > 0 for s in c) for c in cases)
    mismatches = inbox_page.evaluate(
        """(cases) => {
            const bad = [];
            cases.forEach((trace, n) => {
                let state = {floor: 0, seen: []};
                trace.forEach((step, i) => {
                    if (step[0] === "hello") {
                        if (state.floor !== step[1]) bad.push([n, i, "after_id", state.floor]);
                        return;
                    }
                    const r = DariInboxModule.catchUp(state, step[1]);
                    if (r.fresh !== step[2]) bad.push([n, i, "fresh", r.fresh]);
                    state = r.state;
                });
            });
            return bad.slice(0, 10);
        }""",
        cases,
    )
    assert mismatches == []


def test_js_merge_for_the_next_page_keeps_the_higher_floor(inbox_page: Page) -> None:
    merged = inbox_page.evaluate(
        "() => DariInboxModule.mergeCatchUp({floor: 4, seen: [6, 9]}, {floor: 7, seen: [8, 9]})"
    )
    assert merged == {"floor": 7, "seen": [9, 8]}
