"""The inbox in Chromium with the kinds the server writes: an overdue urgent consult and
an unanswered urgent ring ring; another specialist taking the consult stops the ring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from server.notifications import service as notifications
from tests.web.browser_fixtures import browser_login, csp_violations, wait_until
from tests.web.support import make_call_case

pytestmark = pytest.mark.browser


def test_inbox_rings_until_the_consult_is_taken(new_page: Callable[..., Any], bdb: Session) -> None:
    case = make_call_case(bdb)
    page = new_page("en")
    browser_login(page, case.specialist)
    page.wait_for_function("() => window.dariInbox !== undefined")
    rings = "(n) => window.dariInbox.rings(n)"
    # As consults and scheduling write them (server/notifications/kinds.py).
    assert page.evaluate(rings, {"kind": "consult.overdue", "payload": {"urgency": "urgent"}})
    assert not page.evaluate(rings, {"kind": "consult.overdue", "payload": {"urgency": "soon"}})
    assert page.evaluate(rings, {"kind": "urgent.escalated", "payload": {"consult_id": "x"}})
    assert (
        page.evaluate(
            "(n) => window.dariInbox.consultOf(n)",
            {"kind": "consult.status", "payload": {"consult": "c1"}},
        )
        == "c1"
    )
    specialist = case.specialist.id or 0
    room = case.consult.public_id
    notifications.notify(bdb, specialist, "urgent.ring", {"consult_id": room, "urgent_id": 1})
    bdb.commit()
    wait_until(lambda: "is-ringing" in (page.get_attribute("#live", "class") or ""), timeout=15)
    # Another specialist took it: the banner stops ringing but still offers a refresh.
    notifications.notify(bdb, specialist, "urgent.taken", {"consult_id": room, "urgent_id": 1})
    bdb.commit()
    wait_until(lambda: page.evaluate("() => window.dariInbox.ringing().length") == 0, timeout=15)
    assert "is-ringing" not in (page.get_attribute("#live", "class") or "")
    assert page.locator("#live a").count() == 1
    assert csp_violations(page) == []
