"""Reusable browser fixtures: headless Chromium from the system, and logging a page in.

Use in a test module with `from tests.browser_support import browser  # noqa: F401`
(or list this module in `pytest_plugins`). Never `playwright install`: Chromium is
/usr/bin/chromium on these machines.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from server.accounts.models import User
from tests.factories import TEST_PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole run; each test opens its own contexts."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def logged_in_page(browser: Browser, base_url: str, user: User) -> Page:
    """A page in a fresh context (own cookies), logged in through the real login form."""
    context = browser.new_context(base_url=base_url, locale="en-US")
    page = context.new_page()
    page.goto("/login")
    page.fill("#email", user.email)
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(f"{base_url}/")
    return page
