"""The call page fits a 1366×768 clinic PC and a tablet, without sideways scrolling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from tests.web.browser_fixtures import browser_login, shot
from tests.web.support import make_call_case

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("name", "viewport"),
    [("desktop", {"width": 1366, "height": 768}), ("tablet", {"width": 800, "height": 1280})],
)
def test_call_page_fits_without_sideways_scrolling(
    name: str, viewport: dict[str, int], new_page: Callable[..., Any], bdb: Session
) -> None:
    case = make_call_case(bdb)
    page = new_page("ko", viewport)
    browser_login(page, case.gp)
    page.goto(f"/consults/{case.consult.public_id}/call")
    page.wait_for_function("() => document.getElementById('local-video').srcObject !== null")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    hang_up = page.locator("#btn-hangup").bounding_box()
    assert hang_up is not None
    if name == "desktop":
        # The call controls are on screen without scrolling.
        assert hang_up["y"] + hang_up["height"] <= viewport["height"]
    # Keyboard: Tab reaches the call controls.
    page.focus("#btn-mic")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "btn-camera"
    shot(page, f"layout-{name}.ko")
