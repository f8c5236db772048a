"""The inbox in Chromium with the kinds the server writes: an overdue urgent consult and
an unanswered urgent ring ring; another specialist taking the consult stops the ring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from server.accounts.models import Role, Specialty
from server.clock import utcnow
from server.scheduling import urgent
from tests.factories import make_consult_row, make_user
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
    # A real ring (nobody on call: the whole specialty is rung), as the server writes it.
    waiting = make_consult_row(
        bdb, case.gp, case.consult.specialty_id, urgency="urgent", requested_at=utcnow()
    )
    item = urgent.start_urgent(bdb, case.gp, waiting)
    bdb.commit()
    wait_until(lambda: "is-ringing" in (page.get_attribute("#live", "class") or ""), timeout=15)
    assert page.evaluate("() => window.dariInbox.ringing()") == [waiting.public_id]
    # Another specialist took it: the banner stops ringing but still offers a refresh,
    # and the panel says who took it.
    other = make_user(bdb, Role.SPECIALIST, specialty=bdb.get(Specialty, waiting.specialty_id))
    urgent.accept(bdb, other, item.id or 0, pool_ok=True)
    bdb.commit()
    wait_until(lambda: page.evaluate("() => window.dariInbox.ringing().length") == 0, timeout=15)
    assert "is-ringing" not in (page.get_attribute("#live", "class") or "")
    assert page.locator("#live a").count() == 1
    assert other.name in page.inner_text(f"[data-taken='{waiting.public_id}']")
    assert csp_violations(page) == []
