"""Attachment bytes: type decided from the contents, size capped while streaming,
stored content-addressed on disk, thumbnails for images."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from server.consults.errors import AttachmentTooLarge, AttachmentTypeRefused
from server.consults.models import AttachmentKind

log = logging.getLogger("dari.consults.attachments")

MEDIA_TYPES = {
    AttachmentKind.JPEG: "image/jpeg",
    AttachmentKind.PNG: "image/png",
    AttachmentKind.PDF: "application/pdf",
    AttachmentKind.DICOM: "application/dicom",
}
IMAGE_KINDS = {AttachmentKind.JPEG, AttachmentKind.PNG}
THUMBNAIL_SIZE = (320, 320)
CHUNK = 64 * 1024


def sniff(head: bytes) -> AttachmentKind | None:
    """The file's kind from its first bytes; the name and the client's header are ignored."""
    if head.startswith(b"\xff\xd8\xff"):
        return AttachmentKind.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return AttachmentKind.PNG
    if head.startswith(b"%PDF-"):
        return AttachmentKind.PDF
    # DICOM Part 10: a 128-byte preamble, then the magic "DICM".
    if len(head) >= 132 and head[128:132] == b"DICM":
        return AttachmentKind.DICOM
    return None


@dataclass
class Spooled:
    """An upload written to a temporary file, not yet stored."""

    path: Path
    size: int
    sha256: str
    filename: str


def clean_filename(name: str) -> str:
    """The last path component, without control characters, at most 200 characters."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return (name or "attachment")[:200]


async def spool(
    chunks: AsyncIterator[bytes], directory: Path, limit: int, filename: str
) -> Spooled:
    """Write chunks to a temporary file in `directory`; past `limit` bytes stop, delete
    it and refuse with 413, so an oversize upload leaves nothing behind."""
    os.makedirs(directory, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix="upload-")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise AttachmentTooLarge(limit)
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return Spooled(path, size, digest.hexdigest(), clean_filename(filename))


def check_kind(spooled: Spooled) -> AttachmentKind:
    """The kind, or 415; images must also open as images (a JPEG header on HTML fails)."""
    with spooled.path.open("rb") as handle:
        kind = sniff(handle.read(132))
    if kind is None:
        raise AttachmentTypeRefused()
    if kind in IMAGE_KINDS:
        try:
            with Image.open(spooled.path) as image:
                image.verify()
                if (image.format or "").lower() not in ("jpeg", "png"):
                    raise AttachmentTypeRefused()
        except AttachmentTypeRefused:
            raise
        except Exception as error:
            # Broad on purpose: on a truncated, corrupt or hostile file Pillow raises
            # OSError, SyntaxError, ValueError, struct.error, DecompressionBombError...;
            # any of them means "not an image we accept" (415), never a 500.
            log.info("upload refused: not a readable image (%s)", type(error).__name__)
            raise AttachmentTypeRefused() from error
    return kind


def stored_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def thumbnail_path(root: Path, sha256: str) -> Path:
    return root / "thumbnails" / sha256[:2] / f"{sha256}.jpg"


def store(root: Path, spooled: Spooled, kind: AttachmentKind) -> bool:
    """Move the spooled file to its content address (same bytes stored once);
    returns whether a thumbnail exists."""
    target = stored_path(root, spooled.sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        spooled.path.unlink(missing_ok=True)
    else:
        os.replace(spooled.path, target)
        os.chmod(target, 0o600)
    if kind not in IMAGE_KINDS:
        return False
    thumb = thumbnail_path(root, spooled.sha256)
    if thumb.exists():
        return True
    try:
        thumb.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(target) as image:
            image.draft("RGB", THUMBNAIL_SIZE)  # JPEG: decode at a reduced scale
            image.thumbnail(THUMBNAIL_SIZE)
            image.convert("RGB").save(thumb, "JPEG", quality=80)
    except Exception:
        # Broad on purpose: a thumbnail is a convenience and the original is stored;
        # Pillow's decoders raise many types (see check_kind), the disk OSError.
        log.warning("no thumbnail for attachment %s", spooled.sha256[:12], exc_info=True)
        thumb.unlink(missing_ok=True)
        return False
    return True
