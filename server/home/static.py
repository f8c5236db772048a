"""The static files every page links to, under content-hashed names (web/assets.py)."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter
from fastapi.responses import Response

from server.errors import NotFound
from web.render import static_file

router = APIRouter()


@router.get("/static/{name:path}", include_in_schema=False)
def serve_static(name: str) -> Response:
    """Only hashed names are served: a changed file always gets a new URL."""
    asset = static_file(name)
    if asset is None:
        raise NotFound("file")
    media_type = mimetypes.guess_type(asset.logical)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type.endswith("javascript"):
        media_type += "; charset=utf-8"
    return Response(
        asset.body,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
