"""The user guides only show pictures the browser tests produce, and cover every role.

The browser tests take every screenshot; those marked `guide=True` are written into
docs/img only by `make guide-images`, so a normal run leaves the tracked files alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
IMAGES = ROOT / "docs" / "img"
IMAGE = re.compile(r"!\[[^\]]*\]\((img/[^)]+)\)")
# shot(page, "name.ko", guide=True) or shot(page, f"name.{lang}", guide=True)
GUIDE_SHOT = re.compile(r'\bshot\(\s*\w+,\s*f?"([^"]+)",\s*guide=True\s*\)')
LANGS = ("ko", "en")


def guide_images(lang: str) -> list[str]:
    """The image file names the guide in this language shows, in order."""
    text = (ROOT / "docs" / f"guide.{lang}.md").read_text(encoding="utf-8")
    return [Path(image).name for image in IMAGE.findall(text)]


def guide_shots() -> set[str]:
    """The file names tests/web's browser tests write into docs/img in `make guide-images`
    (which runs only those)."""
    sources = "\n".join(path.read_text(encoding="utf-8") for path in HERE.glob("test_browser*.py"))
    names = GUIDE_SHOT.findall(sources)
    assert len(names) >= 20, "the pattern no longer finds the guide screenshots"
    return {f"{name.replace('{lang}', lang)}.png" for name in names for lang in LANGS}


@pytest.mark.parametrize("lang", LANGS)
def test_guide_images_exist_and_are_regenerated_by_a_test(lang: str) -> None:
    images = guide_images(lang)
    assert len(images) >= 10
    made = guide_shots()
    for image in images:
        assert (IMAGES / image).is_file(), image
        assert image in made, f"{image}: no browser test takes it with guide=True"
        # The English guide may show a Korean-only screen, never the other way round.
        assert image.endswith((f".{lang}.png", ".ko.png")), image


def test_every_guide_image_is_shown_by_a_guide() -> None:
    """No screenshot is written into docs/img for nothing, and no stale image stays there."""
    shown = {image for lang in LANGS for image in guide_images(lang)}
    assert guide_shots() <= shown, sorted(guide_shots() - shown)
    on_disk = {path.name for path in IMAGES.iterdir()}
    assert on_disk <= shown, sorted(on_disk - shown)


@pytest.mark.parametrize("lang", LANGS)
def test_guide_covers_booking_and_the_admin_pages(lang: str) -> None:
    images = guide_images(lang)
    for image in ("consult-book", "schedule", "roster", "admin-users", "admin-rosters"):
        assert f"{image}.{lang}.png" in images, image
