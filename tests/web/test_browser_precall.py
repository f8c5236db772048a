"""Pre-call check in Chromium: devices, the recommendation rule, the echo test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from server.accounts.models import Role
from tests.factories import make_user
from tests.web.browser_fixtures import browser_login, csp_violations, shot

pytestmark = pytest.mark.browser

# (measured link, expected recommendation): the thresholds documented in docs/web.md.
CASES = [
    ({"connected": False}, "written"),
    ({"connected": True, "rttMs": 40, "lossPct": 0, "kbps": 1500}, "video"),
    ({"connected": True, "rttMs": 40, "lossPct": 0, "kbps": 260}, "video"),
    ({"connected": True, "rttMs": 40, "lossPct": 0, "kbps": 249}, "low"),
    ({"connected": True, "rttMs": 301, "lossPct": 0, "kbps": 1500}, "low"),
    ({"connected": True, "rttMs": 40, "lossPct": 3.5, "kbps": 1500}, "low"),
    ({"connected": True, "rttMs": 40, "lossPct": 0, "kbps": 99}, "audio"),
    ({"connected": True, "rttMs": 701, "lossPct": 0, "kbps": 1500}, "audio"),
    ({"connected": True, "rttMs": 40, "lossPct": 9, "kbps": 1500}, "audio"),
    ({"connected": True, "rttMs": 40, "lossPct": 0, "kbps": 29}, "written"),
    ({"connected": True, "rttMs": 1600, "lossPct": 0, "kbps": 1500}, "written"),
    ({"connected": True, "rttMs": 40, "lossPct": 21, "kbps": 1500}, "written"),
]


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
    assert result["measured"]["rttMs"] is not None and result["measured"]["kbps"] > 0
    # Loopback on this machine: nothing should push the recommendation below video.
    assert result["recommendation"] == "video", result
    assert page.locator("#r-rtt").inner_text().endswith("ms")
    shot(page, f"precall-result.{lang}", guide=True)
    assert csp_violations(page) == []
