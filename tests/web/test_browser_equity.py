"""The equity view in Chromium, in Korean and English: figures, server-drawn charts, CSV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from tests.equity.fixtures import START, make_authority, make_world
from tests.web.browser_fixtures import browser_login, csp_violations, shot

pytestmark = pytest.mark.browser

TITLES = {
    "ko": "접근 형평성: 지역별 협진 소요 시간",
    "en": "Equity of access: time to consult by region",
}
REFERENCE = {"ko": "Champlain BASE 기준", "en": "Champlain BASE reference"}


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_equity_dashboard_in_both_languages(
    lang: str, new_page: Callable[..., Any], bdb: Session
) -> None:
    world = make_world(bdb)
    authority = make_authority(bdb, world.region_a)
    page = new_page(lang)
    browser_login(page, authority)
    page.click("nav a[href='/equity']")
    page.wait_for_url("**/equity")
    # The filters: two weeks from the fixture's Monday, its specialty.
    page.goto(f"/equity?start={START.isoformat()}&weeks=4&specialty={world.specialty.id}")
    assert page.locator("h1").inner_text() == TITLES[lang]
    assert page.locator("#overall-n").inner_text() == "4"
    assert page.locator("#overall-median").inner_text() == "2.0"
    assert REFERENCE[lang] in page.locator("#equity-summary").inner_text()
    assert "21.0" in page.locator("#equity-summary").inner_text()
    # Three charts, drawn on the server, decoded and shown by the browser.
    for chart in ("chart-response", "chart-resolved", "chart-weekly"):
        width = page.evaluate(f"() => document.getElementById('{chart}').naturalWidth")
        assert width > 0, chart
    assert page.locator("script[src*='pygal'], script[src*='chart']").count() == 0
    region_rows = page.locator("#by-region tbody tr")
    assert region_rows.count() == 1
    assert region_rows.first.get_attribute("data-key") == str(world.region_a.id)
    # The CSV link carries the same filters.
    with page.expect_download() as download_info:
        page.click("#equity-csv")
    download = download_info.value
    assert download.suggested_filename.startswith("dari-equity-2020-01-06-4w")
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    first = text.splitlines()[0]
    assert first.startswith("구분," if lang == "ko" else "breakdown,")
    shot(page, f"equity-{lang}")
    page.locator("#chart-weekly").scroll_into_view_if_needed()
    shot(page, f"equity-charts-{lang}")
    assert csp_violations(page) == []
