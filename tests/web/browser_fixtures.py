"""Playwright fixtures: a live Dari on its own SQLite database, and Debian's Chromium.

Never `playwright install`: the browser is /usr/bin/chromium, with a fake camera and
microphone. tests/web/conftest.py makes the fixtures available to tests/web.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from server import migrate
from server.accounts.models import User
from tests.conftest import ROOT, observer_engine, start_server, stop_server
from tests.factories import TEST_PASSWORD

ARTIFACTS = ROOT / "test-artifacts"
GUIDE_IMAGES = ROOT / "docs" / "img"
# `make guide-images` sets it; a normal run leaves docs/img (tracked files) alone.
WRITE_GUIDE_IMAGES = os.environ.get("DARI_GUIDE_IMAGES") == "1"
VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture(scope="session")
def browser_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The browser tests' own SQLite database (one run, not one per backend: a browser
    sees the same pages on either, and the DB tests already cover both)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('browserdb') / 'dari.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def browser_server(
    browser_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    process, base = start_server(browser_database, tmp_path_factory.mktemp("browservar"))
    yield base
    stop_server(process)


@pytest.fixture
def bdb(browser_database: str) -> Iterator[Session]:
    """Arrange rows in the browser server's database."""
    with Session(observer_engine(browser_database), expire_on_commit=False) as session:
        yield session


@pytest.fixture(scope="session")
def chromium(browser: Any) -> Any:
    """The run's one Chromium (tests/browser_support.py)."""
    return browser


@pytest.fixture
def new_page(chromium: Any, browser_server: str) -> Iterator[Callable[..., Any]]:
    """Pages in fresh browser contexts (own cookies), closed after the test."""
    contexts: list[Any] = []

    def make(lang: str = "ko", viewport: dict[str, int] | None = None) -> Any:
        """A page whose interface language is `lang` ("ko" or "en")."""
        context = chromium.new_context(
            base_url=browser_server,
            viewport=viewport or VIEWPORT,
            locale="ko-KR" if lang == "ko" else "en-GB",
        )
        context.add_cookies([{"name": "dari_lang", "value": lang, "url": browser_server}])
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        # Anything our strict CSP refused is a bug in our pages: collect it for the test.
        page.dari_console = []
        page.on("console", lambda message: page.dari_console.append(message.text))
        return page

    yield make
    for context in contexts:
        context.close()


def csp_violations(page: Any) -> list[str]:
    return [text for text in page.dari_console if "Content Security Policy" in text]


def browser_login(page: Any, user: User) -> None:
    page.goto("/login")
    page.fill("#email", user.email)
    page.fill("#password", TEST_PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(lambda url: not url.endswith("/login"))


def shot(page: Any, name: str, guide: bool = False) -> Path:
    """Save a screenshot under test-artifacts/; a guide image (`guide=True`) also goes to
    docs/img/, but only in `make guide-images` (DARI_GUIDE_IMAGES=1)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if guide and WRITE_GUIDE_IMAGES:
        GUIDE_IMAGES.mkdir(parents=True, exist_ok=True)
        (GUIDE_IMAGES / f"{name}.png").write_bytes(path.read_bytes())
    return path


def wait_until(check: Callable[[], Any], timeout: float = 20.0, every: float = 0.25) -> Any:
    """Poll until check() is truthy; fail with the last value after the timeout."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not reached within {timeout} s (last value: {value!r})")
