"""Static files under content-hashed names, so browsers may cache them for a year."""

from __future__ import annotations

import hashlib
import mimetypes
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from server.errors import NotFound

STATIC_DIR = Path(__file__).parent / "static"
router = APIRouter()


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


def static_url(logical: str) -> str:
    hashed, _ = manifest()[logical]
    return f"/static/{hashed}"


@router.get("/static/{name:path}", include_in_schema=False)
def serve_static(name: str) -> Response:
    """Only hashed names are served: a changed file always gets a new URL."""
    path = _by_hashed_name().get(name)
    if path is None:
        raise NotFound("file")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type.endswith("javascript"):
        media_type += "; charset=utf-8"
    return Response(
        path.read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
