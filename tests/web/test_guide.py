"""The user guides only show pictures the browser tests produce, and cover every role."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = re.compile(r"!\[[^\]]*\]\((img/[^)]+)\)")
TESTS = ROOT / "tests" / "web"


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_guide_images_exist_and_are_regenerated_by_a_test(lang: str) -> None:
    text = (ROOT / "docs" / f"guide.{lang}.md").read_text(encoding="utf-8")
    images = IMAGE.findall(text)
    assert len(images) >= 10
    sources = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.glob("test_browser_*.py"))
    for image in images:
        assert (ROOT / "docs" / image).is_file(), image
        stem = Path(image).name.removesuffix(".png")
        base, _, suffix = stem.rpartition(".")
        # shot(page, "name.ko", guide=True) or shot(page, f"name.{lang}", guide=True)
        assert f'"{stem}"' in sources or f'f"{base}.{{lang}}"' in sources, image
        assert suffix == lang or stem.endswith(".ko"), image


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_guide_covers_booking_and_the_admin_pages(lang: str) -> None:
    text = (ROOT / "docs" / f"guide.{lang}.md").read_text(encoding="utf-8")
    for image in ("consult-book", "schedule", "roster", "admin-users", "admin-rosters"):
        assert f"img/{image}.{lang}.png" in text, image
