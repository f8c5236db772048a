"""Loader dependencies: fetch the consult *and* check access once (404 for the rest).

Every route and page of consults, notes and calls takes one of these; sockets and
services call `access.load_consult` itself."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.datastructures import FormData, UploadFile

from server.accounts.deps import CurrentUser, SettingsDep, client_ip
from server.consults import attachments as files
from server.consults import service
from server.consults.access import Need, Viewing, load_consult
from server.consults.errors import AttachmentTooLarge
from server.db import SessionDep
from server.errors import AppError

# Room for the multipart envelope around a file exactly at the limit.
MULTIPART_SLACK = 64 * 1024


def consult_for_user(
    public_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> Viewing:
    """Anyone who may see the consult (the pool's triage view and administrators too)."""
    return load_consult(session, user, public_id, ip=client_ip(request))


def consult_for_participant(
    public_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> Viewing:
    """The requesting clinic and the assigned specialist: the call and the shared note."""
    return load_consult(session, user, public_id, need=Need.PARTICIPANT, ip=client_ip(request))


def consult_for_assigned(
    public_id: str, request: Request, session: SessionDep, user: CurrentUser
) -> Viewing:
    """The assigned specialist only."""
    return load_consult(session, user, public_id, need=Need.ASSIGNED, ip=client_ip(request))


ConsultForUser = Annotated[Viewing, Depends(consult_for_user)]
ConsultForParticipant = Annotated[Viewing, Depends(consult_for_participant)]
ConsultForAssigned = Annotated[Viewing, Depends(consult_for_assigned)]


async def _read_upload(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(files.CHUNK):
        yield chunk


async def spooled_upload(
    request: Request, viewing: ConsultForUser, settings: SettingsDep
) -> AsyncIterator[files.Spooled]:
    """The request body streamed to a temporary file, refused (413) the moment it passes
    the limit. Accepts a raw body (?filename=…) or multipart/form-data (field `file`).
    Access is checked before a byte is read; the temporary file is always removed."""
    service.require_participant(viewing)
    limit = settings.attachment_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise AttachmentTooLarge(limit)
    directory = settings.resolved_attachments_dir() / "tmp"
    content_type = request.headers.get("content-type", "")
    form: FormData | None = None
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=10)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise AppError("file_missing", "send the file in the form field 'file'", 422)
            spooled = await files.spool(
                _read_upload(upload), directory, limit, upload.filename or "attachment"
            )
        else:
            filename = request.query_params.get("filename", "attachment")
            spooled = await files.spool(request.stream(), directory, limit, filename)
    finally:
        if form is not None:
            await form.close()  # the parser's own temporary files
    try:
        yield spooled
    finally:
        # Stored files were moved away already; this removes refused ones.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spooled.path)


SpooledUpload = Annotated[files.Spooled, Depends(spooled_upload)]
