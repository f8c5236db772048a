"""Reusable browser fixtures: headless Chromium from the system, and logging a page in.

tests/conftest.py imports the `browser` fixture, so every test can ask for it.
Never `playwright install`: Chromium is /usr/bin/chromium on these machines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from server.accounts.models import User
from tests.factories import TEST_PASSWORD

CHROMIUM = os.environ.get("DARI_CHROMIUM", "/usr/bin/chromium")
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
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the whole run; each test opens its own contexts.

    One per run, for every package's browser tests: a second sync Playwright started
    while this one lives fails ("Sync API inside the asyncio loop").
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (never a downloaded browser)")
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
