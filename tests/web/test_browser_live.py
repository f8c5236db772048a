"""The consult page follows the consult without a reload (consult-live.js over lib/live.js):
the other side's message appears in place and each notification is handled once (the
catch-up rule of lib/catchup.js, shared with the inbox and property-tested there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from tests.web.browser_fixtures import browser_login, csp_violations, wait_until
from tests.web.support import make_call_case

pytestmark = pytest.mark.browser


def test_the_other_sides_message_appears_in_place_once(
    new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    url = f"/consults/{case.consult.public_id}"
    gp = new_page("ko")
    browser_login(gp, case.gp)
    gp.goto(url)
    gp.wait_for_function("() => window.dariLive !== undefined")
    gp.evaluate("() => { window.notReloaded = true; }")
    specialist = new_page("en")
    browser_login(specialist, case.specialist)
    specialist.goto(url)
    specialist.fill("#thread textarea[name=body]", "Please send the latest ECG.")
    specialist.click("#thread button[type=submit]")
    specialist.wait_for_selector("#thread article.message")
    # The GP's page shows it in place: same document, the thread part swapped.
    wait_until(lambda: gp.locator("#thread article.message").count() == 1)
    assert "Please send the latest ECG." in gp.locator("#thread").inner_text()
    assert gp.evaluate("() => window.notReloaded") is True
    received = gp.evaluate("() => window.dariLive.received.map((n) => n.id)")
    assert len(received) == len(set(received)) >= 1
    assert gp.evaluate("() => window.dariLive.refreshes") >= 1
    assert csp_violations(gp) == []
