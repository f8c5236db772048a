"""Static files under content-hashed names, so browsers may cache them for a year.

The names are worked out here (pages link to them with `static_url`); the server's
route that sends the files looks them up with `by_hashed_name`.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static/"


@lru_cache(maxsize=1)
def manifest() -> dict[str, tuple[str, Path]]:
    """logical name → (hashed name, path), computed once per process."""
    entries: dict[str, tuple[str, Path]] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if not path.is_file():
            continue
        logical = path.relative_to(STATIC_DIR).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        stem, dot, suffix = logical.rpartition(".")
        hashed = f"{stem}.{digest}.{suffix}" if dot else f"{logical}.{digest}"
        entries[logical] = (hashed, path)
    return entries


@lru_cache(maxsize=1)
def _by_hashed_name() -> dict[str, Path]:
    return {hashed: path for hashed, path in manifest().values()}


def by_hashed_name(name: str) -> Path | None:
    """The file behind a hashed name; None for any other name (old or made up)."""
    return _by_hashed_name().get(name)


def static_url(logical: str) -> str:
    hashed, _ = manifest()[logical]
    return f"{STATIC_PREFIX}{hashed}"
