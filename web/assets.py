"""Static files under content-hashed names, so browsers may cache them for a year.

Rendering only: the names and bytes to send. The route that sends them lives in the
server (server/home/static.py) and looks them up here through `web.render`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from web import js_modules

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/"


@dataclass(frozen=True)
class Asset:
    """One file as served: its logical name (path under web/static) and its bytes, which
    for an ES module are the file with its imports rewritten to hashed names."""

    logical: str
    body: bytes


@lru_cache(maxsize=1)
def _files() -> dict[str, bytes]:
    """logical name (path under web/static) → the file as written."""
    return {
        path.relative_to(STATIC_DIR).as_posix(): path.read_bytes()
        for path in sorted(STATIC_DIR.rglob("*"))
        if path.is_file()
    }


@lru_cache(maxsize=1)
def _linked() -> dict[str, tuple[str, bytes]]:
    """logical name → (hashed name, bytes served); ES modules import by hashed names."""
    return js_modules.link(_files())


@lru_cache(maxsize=1)
def manifest() -> dict[str, tuple[str, Path]]:
    """logical name → (hashed name, path), computed once per process."""
    return {logical: (hashed, STATIC_DIR / logical) for logical, (hashed, _) in _linked().items()}


@lru_cache(maxsize=1)
def _by_hashed_name() -> dict[str, Asset]:
    return {hashed: Asset(logical, body) for logical, (hashed, body) in _linked().items()}


def by_hashed_name(name: str) -> Asset | None:
    """The file behind a hashed name; None for any other name (old or made up)."""
    return _by_hashed_name().get(name)


def static_url(logical: str) -> str:
    hashed, _ = manifest()[logical]
    return f"{STATIC_PREFIX}{hashed}"


@lru_cache(maxsize=16)
def module_imports(*entries: str) -> tuple[str, ...]:
    """Every module the entry modules import, directly or not (for `modulepreload`)."""
    return tuple(js_modules.closure(js_modules.graph(_files()), entries))
