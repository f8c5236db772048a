"""The browser fixtures, defined once for tests/web (a star import per module would give
each module its own session-scoped Playwright, and the second one would fail to start)."""

from tests.web.browser_fixtures import (  # noqa: F401
    bdb,
    browser_database,
    browser_server,
    chromium,
    new_page,
)
