"""Consult pages: plain HTML forms over the same services as the API (the web client
issue polishes them). Every page goes through the same loader and visibility rule."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from server.accounts.deps import CurrentUser, SettingsDep, client_ip
from server.accounts.models import Organisation, Role, Specialty, User
from server.assist import service as assist
from server.clock import utcnow
from server.consults import clocks, lifecycle, reports, service, views
from server.consults.access import Access
from server.consults.deps import ConsultForUser, SpooledUpload
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
from server.consults.schemas import CloseIn, ConsultIn, DecisionIn, ReportIn
from server.db import SessionDep
from server.errors import AppError
from server.notes import service as notes
from server.scheduling import booking
from web.render import SUPPORTED, render, translations

router = APIRouter(include_in_schema=False)

TextField = Annotated[str, Form(max_length=20_000)]


def _back(public_id: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/consults/{public_id}{anchor}", status_code=303)


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
def new_consult_submit(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
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
    assist_suggestion: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Create the request; on a refusal show the form again with the reason."""
    values = {
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
    try:
        data = ConsultIn.model_validate({**values, "submit": action != "draft"})
        consult = service.create_request(session, user, data, client_ip(request))
        # The triage suggestion the GP saw last, and what they chose (server/assist).
        assist.record_choice(session, user, assist_suggestion, consult, ip=client_ip(request))
    except AppError as refusal:
        # Nothing was written: every check runs before the first insert. The field that
        # held a registration number is emptied, so the number is not even sent back.
        if isinstance(refusal, RegistrationNumberRefused):
            values[refusal.field] = ""
        return render(
            request,
            "consults/new.html",
            status=refusal.status,
            values=values,
            error=refusal.message,
            **_form_context(session),
        )
    return _back(consult.public_id)


@router.get("/consults/{public_id}")
def consult_page(
    request: Request, viewing: ConsultForUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """The consult: request, timeline, thread, attachments, report and the GP's part."""
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
    return render(
        request,
        "consults/detail.html",
        # The status rules the page applies, from the named sets (never a list of its own).
        closed=consult.status in lifecycle.CLOSED,
        join_call=lifecycle.call_joinable(consult),
        report_writable=consult.status in lifecycle.REPORT_WRITABLE,
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
    viewing: ConsultForUser,
    session: SessionDep,
    to: Annotated[str, Form(max_length=20)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    service.change_status(session, viewing, to, reason)
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
    viewing: ConsultForUser,
    session: SessionDep,
    body: TextField,
    reply_to_id: Annotated[int | None, Form()] = None,
) -> Response:
    service.post_message(session, viewing, body, reply_to_id)
    return _back(viewing.consult.public_id, "#thread")


@router.post("/consults/{public_id}/attachments")
def page_attachment(
    viewing: ConsultForUser, upload: SpooledUpload, session: SessionDep, settings: SettingsDep
) -> Response:
    service.add_attachment(session, viewing, upload, settings.resolved_attachments_dir())
    return _back(viewing.consult.public_id, "#attachments")


@router.post("/consults/{public_id}/report")
def page_report(
    viewing: ConsultForUser,
    session: SessionDep,
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
    reports.save_draft(session, viewing, data)
    if action == "sign":
        reports.sign(session, viewing)
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
    viewing: ConsultForUser,
    session: SessionDep,
    outcome: Annotated[Outcome, Form()],
    usefulness: Annotated[str, Form()] = "",
    note: TextField = "",
) -> Response:
    rating = int(usefulness) if usefulness.isdigit() else None
    service.close(session, viewing, CloseIn(outcome=outcome, usefulness=rating, note=note))
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
