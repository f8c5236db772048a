"""Pre-call check in Chromium: devices, the recommendation rule, the echo test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from server.accounts.models import Role
from tests.factories import make_user
from tests.web.browser_fixtures import browser_login, csp_violations, shot, wait_until
from tests.web.support import make_call_case

pytestmark = pytest.mark.browser

# (measured link, expected recommendation): the call page's own rules (call/link.js tiers,
# call/rules.js fall-back), documented in docs/web.md "Pre-call check". lossPct is one way.
CASES = [
    ({"connected": False}, "written"),
    ({"connected": True, "rttMs": 40, "lossPct": 0}, "video"),
    ({"connected": True, "rttMs": 250, "lossPct": 5}, "video"),
    ({"connected": True, "rttMs": 251, "lossPct": 0}, "low"),
    ({"connected": True, "rttMs": 40, "lossPct": 5.5}, "low"),
    ({"connected": True, "rttMs": 351, "lossPct": 0}, "audio"),
    ({"connected": True, "rttMs": 40, "lossPct": 16}, "audio"),
    # The estimate is not used: at the start caps it sits near 76 kbps on any link.
    ({"connected": True, "rttMs": 40, "lossPct": 0, "availableKbps": 59}, "video"),
    ({"connected": True, "rttMs": 3001, "lossPct": 0}, "written"),
    ({"connected": True, "rttMs": 40, "lossPct": 31}, "written"),
    # Camera on, the link chokes; microphone only, speech gets through: audio, not written.
    (
        {
            "connected": True,
            "rttMs": 570,
            "lossPct": 31,
            "audio": {"connected": True, "rttMs": 330, "lossPct": 6},
        },
        "audio",
    ),
    (
        {
            "connected": True,
            "rttMs": 570,
            "lossPct": 31,
            "audio": {"connected": True, "rttMs": 3100, "lossPct": 6},
        },
        "written",
    ),
    ({"connected": True, "rttMs": 570, "lossPct": 31, "audio": {"connected": False}}, "written"),
]

# Link samples around the tier boundaries of call/link.js.
SAMPLES = [
    {"rttMs": 0, "lossPct": 0},
    {"rttMs": 250, "lossPct": 5},
    {"rttMs": 251, "lossPct": 0},
    {"rttMs": 40, "lossPct": 5.1},
    {"rttMs": 350, "lossPct": 20},
    {"rttMs": 351, "lossPct": 0},
    {"rttMs": 40, "lossPct": 20.1},
]
TIERS = ["good", "good", "weak", "weak", "weak", "edge", "edge"]


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_precall_devices_and_recommendation_rule(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    page = new_page(lang)
    page.goto("/login")
    shot(page, f"login.{lang}", guide=True)
    browser_login(page, make_user(bdb, Role.GP))
    page.goto("/precall")
    page.wait_for_function("() => document.querySelectorAll('#camera option').length > 0")
    assert page.locator("#microphone option").count() >= 1
    assert page.evaluate("document.getElementById('preview').srcObject !== null")
    got = page.evaluate(
        "cases => cases.map(c => window.dariPrecall.recommend(c[0]))", [list(c) for c in CASES]
    )
    assert got == [expected for _, expected in CASES]
    shot(page, f"precall.{lang}", guide=True)
    assert csp_violations(page) == []


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_link_test_against_the_echo_peer_recommends_video_on_a_good_link(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    page = new_page(lang)
    browser_login(page, make_user(bdb, Role.GP))
    page.goto("/precall")
    page.wait_for_function("() => document.getElementById('preview').srcObject !== null")
    page.click("#start-test")
    page.wait_for_function("() => document.getElementById('r-rtt').textContent.endsWith('ms')")
    shot(page, f"precall-testing.{lang}", guide=True)
    page.wait_for_function(
        "() => !document.getElementById('recommendation').hidden", timeout=40_000
    )
    result = page.evaluate("() => window.dariPrecall.result")
    assert result["measured"]["connected"] is True
    # Figures from the probes the echo peer sends back on the data channel.
    assert result["measured"]["rttMs"] is not None and result["measured"]["rttMs"] < 250
    assert result["measured"]["lossPct"] is not None and result["measured"]["lossPct"] < 5
    assert result["measured"]["jitterMs"] is not None
    # Loopback on this machine: nothing should push the recommendation below video.
    assert result["recommendation"] == "video", result
    assert page.locator("#r-rtt").inner_text().endswith("ms")
    shot(page, f"precall-result.{lang}", guide=True)
    assert csp_violations(page) == []


def test_precall_and_call_page_share_the_link_tiers(
    new_page: Callable[..., Any], bdb: Session
) -> None:
    """One tier function: the pre-call page imports the call page's call/link.js."""
    case = make_call_case(bdb)
    page = new_page("en")
    browser_login(page, case.gp)
    page.goto("/precall")
    page.wait_for_function("() => !!window.dariPrecall")
    precall = page.evaluate("ss => ss.map(s => window.dariPrecall.tierOf(s))", SAMPLES)
    sources = page.evaluate(
        "() => [...document.querySelectorAll('link[rel=modulepreload], script[type=module]')]"
        ".map(e => e.href || e.src)"
    )
    page.goto(f"/consults/{case.consult.public_id}/call")
    wait_until(lambda: page.evaluate("() => !!window.dariCall"))
    call = page.evaluate("ss => ss.map(s => window.dariCall.link.tierOf(s))", SAMPLES)
    assert precall == call == TIERS
    assert any("/call/link." in src for src in sources), sources
