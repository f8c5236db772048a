"""Static files under content-hashed names, so browsers may cache them for a year."""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from server.errors import NotFound
from web import js_modules

STATIC_DIR = Path(__file__).parent / "static"
router = APIRouter()


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
def _by_hashed_name() -> dict[str, tuple[str, bytes]]:
    return {hashed: (logical, body) for logical, (hashed, body) in _linked().items()}


def static_url(logical: str) -> str:
    hashed, _ = manifest()[logical]
    return f"/static/{hashed}"


@lru_cache(maxsize=16)
def module_imports(*entries: str) -> tuple[str, ...]:
    """Every module the entry modules import, directly or not (for `modulepreload`)."""
    return tuple(js_modules.closure(js_modules.graph(_files()), entries))


@router.get("/static/{name:path}", include_in_schema=False)
def serve_static(name: str) -> Response:
    """Only hashed names are served: a changed file always gets a new URL."""
    found = _by_hashed_name().get(name)
    if found is None:
        raise NotFound("file")
    logical, body = found
    media_type = mimetypes.guess_type(logical)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type.endswith("javascript"):
        media_type += "; charset=utf-8"
    return Response(
        body,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
