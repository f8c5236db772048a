"""Consult pages: plain HTML forms over the same services as the API (the web client
issue polishes them). Every page goes through the same loader and visibility rule."""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from server.accounts.deps import CurrentUser, SettingsDep, client_ip
from server.accounts.models import Organisation, Role, Specialty, User
from server.assist import service as assist
from server.clock import utcnow
from server.consults import attachments as files
from server.consults import clocks, lifecycle, reports, service, views
from server.consults.access import Access, Viewing, load_consult
from server.consults.deps import ConsultForUser, _read_upload
from server.consults.errors import RegistrationNumberRefused
from server.consults.models import (
    ConsultMode,
    ConsultRequest,
    ConsultStatus,
    GPAction,
    Outcome,
    Sex,
    Urgency,
)
from server.consults.privacy import refuse_registration_numbers, strip_registration_numbers
from server.consults.schemas import CloseIn, ConsultIn, DecisionIn, ReportIn
from server.db import SessionDep
from server.errors import AppError
from server.notes import service as notes
from server.scheduling import booking
from web.render import SUPPORTED, form_error, render, translations

router = APIRouter(include_in_schema=False)

TextField = Annotated[str, Form(max_length=20_000)]


def _back(public_id: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/consults/{public_id}{anchor}", status_code=303)


def _field_errors(request: Request, refusal: AppError) -> dict[str, str]:
    """The refusal's message, in the page's language, under the field it is about
    ("form" when it is about none): the page shows it next to that field."""
    return {refusal.field or "form": form_error(request, refusal.template, refusal.params)}


def _keep_typed(values: dict[str, Any], refusal: AppError) -> None:
    """Keep what was typed; a registration number alone is taken out (never echoed)."""
    if isinstance(refusal, RegistrationNumberRefused) and refusal.field:
        typed = values.get(refusal.field)
        if isinstance(typed, str):
            values[refusal.field] = strip_registration_numbers(typed)


def _names(session: Session, consult: ConsultRequest) -> dict[str, Any]:
    """People and places a page names (the specialist's hospital only once assigned)."""
    ids = {consult.requester_id, consult.assigned_specialist_id}
    users = {
        u.id: u for u in session.exec(select(User).where(col(User.id).in_([i for i in ids if i])))
    }
    return {
        "clinic": session.get(Organisation, consult.organisation_id),
        "hospital": (
            session.get(Organisation, consult.assigned_organisation_id)
            if consult.assigned_organisation_id
            else None
        ),
        "specialty": session.get(Specialty, consult.specialty_id),
        "users": users,
    }


@router.get("/consults")
def consult_list(
    request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> Response:
    """The user's consults (a GP's clinic, a specialist's own and pool, an admin's)."""
    consults = service.list_for(session, user, client_ip(request))
    now = utcnow()
    return render(
        request,
        "consults/list.html",
        consults=consults,
        overdue={c.id for c in consults if clocks.is_overdue(c, settings, now)},
    )


def _form_context(session: Session) -> dict[str, Any]:
    return {
        "specialties": session.exec(select(Specialty).order_by(col(Specialty.name_en))).all(),
        "urgencies": list(Urgency),
        "modes": list(ConsultMode),
        "sexes": list(Sex),
    }


@router.get("/consults/new")
def new_consult_form(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The GP's request form."""
    if user.role != Role.GP:
        raise AppError("forbidden", "only GPs request consults", 403)
    return render(request, "consults/new.html", values={}, **_form_context(session))


@router.post("/consults/new")
async def new_consult_submit(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    specialty_id: Annotated[int, Form()],
    patient_chart_number: Annotated[str, Form(max_length=40)],
    patient_age: Annotated[int, Form(ge=0, le=130)],
    patient_sex: Annotated[Sex, Form()],
    clinical_question: TextField,
    urgency: Annotated[Urgency, Form()] = Urgency.ROUTINE,
    mode: Annotated[ConsultMode, Form()] = ConsultMode.VIDEO,
    history: TextField = "",
    medication: TextField = "",
    vital_signs: TextField = "",
    action: Annotated[str, Form()] = "submit",
    file: Annotated[UploadFile | None, File()] = None,
    assist_suggestion: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Create the request (with its first file, if one is chosen); on a refusal show the
    form again with what was typed and the message next to its field."""
    values: dict[str, Any] = {
        "specialty_id": specialty_id,
        "urgency": urgency,
        "mode": mode,
        "patient_chart_number": patient_chart_number,
        "patient_age": patient_age,
        "patient_sex": patient_sex,
        "clinical_question": clinical_question,
        "history": history,
        "medication": medication,
        "vital_signs": vital_signs,
    }
    spooled: files.Spooled | None = None
    ip = client_ip(request)

    def refused(refusal: AppError) -> Response:
        _keep_typed(values, refusal)
        return render(
            request,
            "consults/new.html",
            status=refusal.status,
            values=values,
            errors=_field_errors(request, refusal),
            **_form_context(session),
        )

    def create() -> Response:
        # The database work runs in a worker thread, as in the sync routes.
        try:
            data = ConsultIn.model_validate({**values, "submit": action != "draft"})
            if user.role != Role.GP:
                raise AppError("forbidden", "only GPs request consults", 403)
            # Every check runs before the first insert (the file's too): a refusal leaves
            # nothing behind, and the transaction stays empty.
            refuse_registration_numbers(
                {
                    name: values[name]
                    for name in ("clinical_question", "history", "medication", "vital_signs")
                }
            )
            if spooled is not None:
                files.check_kind(spooled)
            consult = service.create_request(session, user, data, ip)
            # The triage suggestion the GP saw last, and what they chose (server/assist).
            assist.record_choice(session, user, assist_suggestion, consult, ip=ip)
            if spooled is not None:
                viewing = load_consult(session, user, consult.public_id, ip=ip)
                service.add_attachment(
                    session, viewing, spooled, settings.resolved_attachments_dir()
                )
        except AppError as refusal:
            return refused(refusal)
        return _back(consult.public_id)

    try:
        if file is not None and file.filename:
            try:
                refuse_registration_numbers({"file": file.filename})
                spooled = await files.spool(
                    _read_upload(file),
                    settings.resolved_attachments_dir() / "tmp",
                    settings.attachment_max_bytes,
                    file.filename,
                )
            except AppError as refusal:
                return await run_in_threadpool(refused, refusal)
        return await run_in_threadpool(create)
    finally:
        if spooled is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spooled.path)


def _refused(
    request: Request,
    viewing: Viewing,
    session: Session,
    settings: Any,
    refusal: AppError,
    values: dict[str, Any],
) -> Response:
    """The consult page again, with what was typed and the message by its field."""
    _keep_typed(values, refusal)
    return _detail(
        request,
        viewing,
        session,
        settings,
        status=refusal.status,
        errors=_field_errors(request, refusal),
        values=values,
    )


@router.get("/consults/{public_id}")
def consult_page(
    request: Request, viewing: ConsultForUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """The consult: request, timeline, thread, attachments, report and the GP's part."""
    return _detail(request, viewing, session, settings)


def _detail(
    request: Request,
    viewing: Viewing,
    session: Session,
    settings: Any,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    """The consult page; after a refused form, with its message by the field and what
    was typed kept (`values`)."""
    record = views.read_record(session, viewing, settings)
    draft = reports.open_draft(session, viewing.consult.id or 0)
    consult = viewing.consult
    appointment = booking.active_appointment(session, consult.id or 0)
    can_book = (
        appointment is None
        and viewing.user.role == Role.GP
        and viewing.access == Access.CLINIC
        and consult.mode == ConsultMode.VIDEO
        and consult.status in lifecycle.BOOKABLE
        and consult.status != ConsultStatus.DRAFT
    )
    participant = viewing.access in (Access.CLINIC, Access.ASSIGNED)
    report_writable = consult.status in lifecycle.REPORT_WRITABLE
    return render(
        request,
        "consults/detail.html",
        status=status,
        errors=errors or {},
        values=values or {},
        # The status rules the page applies, from the named sets (never a list of its own).
        closed=consult.status in lifecycle.CLOSED,
        join_call=lifecycle.call_joinable(consult),
        report_writable=report_writable,
        stage=lifecycle.stage_label(consult),
        actions=lifecycle.actions_for(viewing.user, consult)
        if viewing.access != Access.ADMIN
        else [],
        # The GP's part: the decision and the close, in one form, once the report is signed.
        can_close=viewing.access == Access.CLINIC
        and consult.status == ConsultStatus.REPORT_PENDING
        and consult.report_signed_at is not None,
        # The shared note beside the report (read-only once the report is signed).
        show_note=participant and record.full and consult.status != ConsultStatus.DRAFT,
        can_draft=viewing.access == Access.ASSIGNED and report_writable,
        appointment=appointment,
        appointment_with=session.get(User, appointment.specialist_id) if appointment else None,
        can_book=can_book,
        consult=viewing.consult,
        record=record,
        draft=draft if draft and draft.author_id == viewing.user.id else None,
        due=clocks.due_at(viewing.consult, settings),
        gp_actions=list(GPAction),
        outcomes=list(Outcome),
        **_names(session, viewing.consult),
    )


@router.post("/consults/{public_id}/transition")
def page_transition(
    request: Request,
    viewing: ConsultForUser,
    session: SessionDep,
    settings: SettingsDep,
    to: Annotated[str, Form(max_length=20)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        service.change_status(session, viewing, to, reason)
    except AppError as refusal:
        values: dict[str, Any] = {"reason": reason}
        refusal.field = refusal.field or "reason"
        return _refused(request, viewing, session, settings, refusal, values)
    return _back(viewing.consult.public_id)


@router.post("/consults/{public_id}/mode")
def page_mode(
    viewing: ConsultForUser,
    session: SessionDep,
    mode: Annotated[ConsultMode, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    service.switch_mode(session, viewing, mode, reason)
    return _back(viewing.consult.public_id)


@router.post("/consults/{public_id}/messages")
def page_message(
    request: Request,
    viewing: ConsultForUser,
    session: SessionDep,
    settings: SettingsDep,
    body: TextField,
    reply_to_id: Annotated[int | None, Form()] = None,
) -> Response:
    try:
        service.post_message(session, viewing, body, reply_to_id)
    except AppError as refusal:
        refusal.field = "body"  # the form's one text field ("message" in the API)
        values: dict[str, Any] = {"body": body}
        return _refused(request, viewing, session, settings, refusal, values)
    return _back(viewing.consult.public_id, "#thread")


@router.post("/consults/{public_id}/attachments")
async def page_attachment(
    request: Request, viewing: ConsultForUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """Add a file; a refused one brings the page back with the message by the file field."""
    spooled: files.Spooled | None = None
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, StarletteUpload) or not upload.filename:
            raise AppError("file_missing", "Choose a file to add.", 422, field="file")
        spooled = await files.spool(
            _read_upload(upload),
            settings.resolved_attachments_dir() / "tmp",
            settings.attachment_max_bytes,
            upload.filename,
        )
        await run_in_threadpool(
            service.add_attachment, session, viewing, spooled, settings.resolved_attachments_dir()
        )
    except AppError as refusal:
        refusal.field = "file"
        return await run_in_threadpool(
            functools.partial(
                _detail,
                request,
                viewing,
                session,
                settings,
                status=refusal.status,
                errors=_field_errors(request, refusal),
            )
        )
    finally:
        await form.close()
        if spooled is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spooled.path)
    return _back(viewing.consult.public_id, "#attachments")


@router.post("/consults/{public_id}/report")
def page_report(
    request: Request,
    viewing: ConsultForUser,
    session: SessionDep,
    settings: SettingsDep,
    findings: TextField = "",
    assessment: TextField = "",
    recommendation: TextField = "",
    follow_up: TextField = "",
    referral_needed: Annotated[bool, Form()] = False,
    referral_urgency: Annotated[str, Form(max_length=10)] = "none",
    action: Annotated[str, Form()] = "save",
) -> Response:
    """Save the draft (the page also autosaves through the API); `sign` freezes it."""
    data = ReportIn.model_validate(
        {
            "findings": findings,
            "assessment": assessment,
            "recommendation": recommendation,
            "follow_up": follow_up,
            "referral_needed": referral_needed,
            "referral_urgency": referral_urgency if referral_needed else "none",
        }
    )
    try:
        reports.save_draft(session, viewing, data)
        if action == "sign":
            reports.sign(session, viewing)
    except AppError as refusal:
        values = data.model_dump()
        return _refused(request, viewing, session, settings, refusal, values)
    return _back(viewing.consult.public_id, "#report")


@router.post("/consults/{public_id}/report/amend")
def page_amend(
    viewing: ConsultForUser, session: SessionDep, reason: Annotated[str, Form(max_length=2000)]
) -> Response:
    reports.amend(session, viewing, reason)
    return _back(viewing.consult.public_id, "#report")


@router.post("/consults/{public_id}/decision")
def page_decision(
    viewing: ConsultForUser,
    session: SessionDep,
    action: Annotated[GPAction, Form()],
    note: TextField = "",
) -> Response:
    service.record_decision(session, viewing, DecisionIn(action=action, note=note))
    return _back(viewing.consult.public_id, "#gp-part")


@router.post("/consults/{public_id}/close")
def page_close(
    request: Request,
    viewing: ConsultForUser,
    session: SessionDep,
    settings: SettingsDep,
    outcome: Annotated[Outcome, Form()],
    action: Annotated[GPAction | None, Form()] = None,
    usefulness: Annotated[str, Form()] = "",
    note: TextField = "",
) -> Response:
    """The GP's part in one form: their decision (signed) and the close with its outcome."""
    rating = int(usefulness) if usefulness.isdigit() else None
    try:
        refuse_registration_numbers({"note": note})
        if ConsultStatus.COMPLETED.value not in lifecycle.allowed_for(
            viewing.user, viewing.consult
        ) or not lifecycle.has_signed_report(session, viewing.consult):
            # Checked before the decision is written, so that a refusal stores nothing.
            raise AppError(
                "report_not_signed",
                "A consult is closed only after the report is signed.",
                409,
            )
        if action is not None:
            service.record_decision(session, viewing, DecisionIn(action=action, note=note))
        service.close(session, viewing, CloseIn(outcome=outcome, usefulness=rating, note=note))
    except AppError as refusal:
        values: dict[str, Any] = {"note": note, "outcome": outcome, "action": action}
        return _refused(request, viewing, session, settings, refusal, values)
    return _back(viewing.consult.public_id)


@router.get("/consults/{public_id}/print")
def print_page(
    request: Request,
    viewing: ConsultForUser,
    session: SessionDep,
    lang: Annotated[str | None, Query(max_length=2)] = None,
) -> Response:
    """The report to print and file (A4, Korean or English: ?lang=ko|en)."""
    service.require_full_record(viewing)
    signed = [r for r in reports.versions(session, viewing.consult.id or 0) if r.signed_at]
    service.audit_consult(session, "consult.print", viewing, versions=[r.version for r in signed])
    extra: dict[str, Any] = {}
    if lang in SUPPORTED:
        extra = {"locale": lang, "translations": translations(lang)}
    return render(
        request,
        "consults/print.html",
        consult=viewing.consult,
        signed=signed,
        latest=signed[-1] if signed else None,
        decisions=service.decisions_of(session, viewing.consult),
        messages=service.messages_of(session, viewing.consult),
        shared_note=notes.final_text(session, viewing.consult),
        printed_at=utcnow(),
        **_names(session, viewing.consult),
        **extra,
    )
