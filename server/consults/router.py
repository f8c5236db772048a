"""Consults API under /api/consults: thin handlers over service, reports and export."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from server.accounts.deps import CurrentUser, SettingsDep, client_ip
from server.consults import export, reports, service, views
from server.consults.access import Access, Viewing, load_consult
from server.consults.attachments import IMAGE_KINDS
from server.consults.deps import ConsultForUser, SpooledUpload
from server.consults.schemas import (
    AmendIn,
    AttachmentOut,
    CloseIn,
    ConsultDetailOut,
    ConsultIn,
    ConsultSummaryOut,
    DecisionIn,
    DecisionOut,
    DraftPatch,
    EventOut,
    MessageIn,
    MessageOut,
    ModeIn,
    ReportIn,
    ReportOut,
    TransitionIn,
)
from server.db import SessionDep
from server.errors import Forbidden

router = APIRouter(prefix="/api/consults", tags=["consults"])


def _detail(session: SessionDep, viewing: Viewing, settings: SettingsDep) -> ConsultDetailOut:
    return views.detail_out(views.read_record(session, viewing, settings), settings)


@router.get("", response_model=list[ConsultSummaryOut])
def list_consults(
    request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> list[ConsultSummaryOut]:
    """The consults this user may see, newest first."""
    consults = service.list_for(session, user, client_ip(request))
    return [views.summary_out(c, settings) for c in consults]


@router.post("", response_model=ConsultDetailOut, status_code=201)
def create_consult(
    body: ConsultIn,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
) -> ConsultDetailOut:
    """A GP's new request (submitted unless `submit` is false)."""
    consult = service.create_request(session, user, body, client_ip(request))
    viewing = load_consult(session, user, consult.public_id, ip=client_ip(request))
    return _detail(session, viewing, settings)


@router.get("/{public_id}", response_model=ConsultDetailOut)
def get_consult(
    viewing: ConsultForUser, session: SessionDep, settings: SettingsDep
) -> ConsultDetailOut:
    """The whole record as this user may see it (the pool sees the triage view)."""
    return _detail(session, viewing, settings)


@router.patch("/{public_id}", response_model=ConsultDetailOut)
def update_consult(
    body: DraftPatch, viewing: ConsultForUser, session: SessionDep, settings: SettingsDep
) -> ConsultDetailOut:
    """Edit a draft request."""
    service.update_draft(session, viewing, body)
    return _detail(session, viewing, settings)


@router.post("/{public_id}/submit", response_model=EventOut)
def submit_consult(viewing: ConsultForUser, session: SessionDep) -> EventOut:
    """Send a draft to the specialty's pool."""
    if viewing.access != Access.CLINIC:
        raise Forbidden("only the requesting clinic submits its request")
    return EventOut.model_validate(service.submit(session, viewing), from_attributes=True)


@router.post("/{public_id}/transitions", response_model=EventOut)
def transition_consult(
    body: TransitionIn, viewing: ConsultForUser, session: SessionDep
) -> EventOut:
    """Move through the state machine (409 names the allowed moves)."""
    event = service.change_status(session, viewing, body.to, body.reason)
    return EventOut.model_validate(event, from_attributes=True)


@router.post("/{public_id}/mode", response_model=EventOut)
def switch_mode(body: ModeIn, viewing: ConsultForUser, session: SessionDep) -> EventOut:
    """Written ↔ video, on the same consult."""
    event = service.switch_mode(session, viewing, body.mode, body.reason)
    return EventOut.model_validate(event, from_attributes=True)


@router.get("/{public_id}/messages", response_model=list[MessageOut])
def list_messages(viewing: ConsultForUser, session: SessionDep) -> list[MessageOut]:
    """The written exchange, oldest first."""
    service.require_full_record(viewing, "messages")
    messages = service.messages_of(session, viewing.consult)
    service.audit_consult(session, "consult.messages.read", viewing, count=len(messages))
    return [MessageOut.model_validate(m, from_attributes=True) for m in messages]


@router.post("/{public_id}/messages", response_model=MessageOut, status_code=201)
def post_message(body: MessageIn, viewing: ConsultForUser, session: SessionDep) -> MessageOut:
    """Add a message (question, answer, advice) to the thread."""
    message = service.post_message(session, viewing, body.body, body.reply_to_id)
    return MessageOut.model_validate(message, from_attributes=True)


@router.post("/{public_id}/attachments", response_model=AttachmentOut, status_code=201)
def upload_attachment(
    viewing: ConsultForUser, upload: SpooledUpload, session: SessionDep, settings: SettingsDep
) -> AttachmentOut:
    """Attach a JPEG, PNG, PDF or DICOM file (raw body with ?filename=, or multipart)."""
    attachment = service.add_attachment(
        session, viewing, upload, settings.resolved_attachments_dir()
    )
    return views.attachment_out(viewing, attachment, True)


def _file_response(path: str, media_type: str, filename: str, inline: bool) -> Response:
    disposition = "inline" if inline else "attachment"
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return FileResponse(
        path,
        media_type=media_type,
        headers={
            "Content-Disposition": (
                f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
            ),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            # Even if a browser renders it, the file can run nothing and load nothing.
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
        },
    )


@router.get("/{public_id}/attachments/{attachment_id}")
def download_attachment(
    attachment_id: str,
    viewing: ConsultForUser,
    session: SessionDep,
    settings: SettingsDep,
    download: Annotated[bool, Query()] = False,
) -> Response:
    """The file as stored; images inline (unless ?download=1), everything else as a download."""
    attachment, path = service.open_attachment(
        session, viewing, attachment_id, settings.resolved_attachments_dir()
    )
    inline = attachment.kind in IMAGE_KINDS and not download
    return _file_response(str(path), service.media_type_of(attachment), attachment.filename, inline)


@router.get("/{public_id}/attachments/{attachment_id}/thumbnail")
def attachment_thumbnail(
    attachment_id: str, viewing: ConsultForUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """A small JPEG of an image attachment, for the consult page."""
    attachment, path = service.open_attachment(
        session, viewing, attachment_id, settings.resolved_attachments_dir(), thumbnail=True
    )
    return _file_response(str(path), "image/jpeg", f"thumb-{attachment.filename}.jpg", True)


@router.get("/{public_id}/reports", response_model=list[ReportOut])
def list_reports(viewing: ConsultForUser, session: SessionDep) -> list[ReportOut]:
    """Every signed version (and the caller's own draft): the report's history."""
    return [views.report_out(r) for r in reports.read_versions(session, viewing)]


@router.put("/{public_id}/report/draft", response_model=ReportOut)
def save_report_draft(body: ReportIn, viewing: ConsultForUser, session: SessionDep) -> ReportOut:
    """Autosave the open draft (creates it on first save); 409 once signed."""
    return views.report_out(reports.save_draft(session, viewing, body))


class NoteExcerptIn(BaseModel):
    text: str = Field(max_length=20_000)


@router.post("/{public_id}/report/from-note", response_model=ReportOut)
def report_from_note(
    body: NoteExcerptIn, viewing: ConsultForUser, session: SessionDep
) -> ReportOut:
    """Start (or add to) the report draft's findings from the shared note's text."""
    return views.report_out(reports.start_from_note(session, viewing, body.text))


@router.post("/{public_id}/report/sign", response_model=ReportOut)
def sign_report(viewing: ConsultForUser, session: SessionDep) -> ReportOut:
    """Sign the open draft: that version is frozen for ever."""
    return views.report_out(reports.sign(session, viewing))


@router.post("/{public_id}/report/amend", response_model=ReportOut, status_code=201)
def amend_report(body: AmendIn, viewing: ConsultForUser, session: SessionDep) -> ReportOut:
    """Open an amendment: a new draft version pointing to the latest signed one."""
    return views.report_out(reports.amend(session, viewing, body.reason))


@router.post("/{public_id}/decisions", response_model=DecisionOut, status_code=201)
def record_decision(body: DecisionIn, viewing: ConsultForUser, session: SessionDep) -> DecisionOut:
    """The GP's own decision and action after the advice, signed by the GP."""
    decision = service.record_decision(session, viewing, body)
    return DecisionOut.model_validate(decision, from_attributes=True)


@router.post("/{public_id}/close", response_model=EventOut)
def close_consult(body: CloseIn, viewing: ConsultForUser, session: SessionDep) -> EventOut:
    """The GP closes the case: outcome and an optional usefulness rating."""
    return EventOut.model_validate(service.close(session, viewing, body), from_attributes=True)


@router.get("/{public_id}/fhir")
def fhir_bundle(viewing: ConsultForUser, session: SessionDep) -> Response:
    """The consult as a FHIR R4 (R4B) Bundle of type collection."""
    bundle = export.export_bundle(session, viewing)
    name = f"consult-{viewing.consult.public_id}.fhir.json"
    return JSONResponse(
        bundle,
        media_type="application/fhir+json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )
