"""The administrators' audit log page (same filters and scope as GET /api/audit).

The log reads as sentences ("김민지 님이 C-0147 협진을 열람"), the raw detail behind a
toggle; an empty filter field means "any" (a form always sends every field)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from server.accounts.deps import AdminUser, client_ip
from server.accounts.models import User
from server.audit.router import AuditFilter, search_for_admin
from server.consults.models import ConsultRequest
from server.db import SessionDep
from server.errors import AppError
from web.render import N_, render

router = APIRouter(include_in_schema=False)

# What each action says, with %(who)s (the actor) and %(what)s (the object named for
# people: a consult's chart number). Actions not listed read "%(who)s: %(action)s".
SENTENCES: dict[str, str] = {
    "consult.read": N_("%(who)s opened consult %(what)s"),
    "consult.list": N_("%(who)s listed consults"),
    "consult.create": N_("%(who)s created consult %(what)s"),
    "consult.update": N_("%(who)s edited consult %(what)s"),
    "consult.requested": N_("%(who)s sent consult %(what)s"),
    "consult.transition": N_("%(who)s moved consult %(what)s on"),
    "consult.mode": N_("%(who)s changed how consult %(what)s is held"),
    "consult.message": N_("%(who)s wrote in consult %(what)s"),
    "consult.messages.read": N_("%(who)s read the messages of consult %(what)s"),
    "consult.print": N_("%(who)s printed consult %(what)s"),
    "consult.export": N_("%(who)s exported consult %(what)s"),
    "consult.decision": N_("%(who)s signed the decision on consult %(what)s"),
    "consult.close": N_("%(who)s closed consult %(what)s"),
    "consult.denied": N_("%(who)s was refused consult %(what)s"),
    "consult.overdue": N_("Consult %(what)s is overdue"),
    "attachment.create": N_("%(who)s added a file to consult %(what)s"),
    "attachment.read": N_("%(who)s opened a file of consult %(what)s"),
    "report.draft": N_("%(who)s worked on the report of consult %(what)s"),
    "report.sign": N_("%(who)s signed the report of consult %(what)s"),
    "report.amend": N_("%(who)s amended the report of consult %(what)s"),
    "report.read": N_("%(who)s read the report of consult %(what)s"),
    "note.opened": N_("%(who)s opened the shared note of consult %(what)s"),
    "note.frozen": N_("The shared note of consult %(what)s became read-only"),
    "call.start": N_("The call of consult %(what)s started"),
    "call.end": N_("The call of consult %(what)s ended"),
    "call.invite": N_("%(who)s invited a guest to the call of consult %(what)s"),
    "appointment.booked": N_("%(who)s booked an appointment"),
    "appointment.cancelled": N_("%(who)s cancelled an appointment"),
    "appointment.rescheduled": N_("%(who)s moved an appointment"),
    "auth.login": N_("%(who)s logged in"),
    "auth.logout": N_("%(who)s logged out"),
    "auth.login_failed": N_("A login failed"),
    "auth.login_throttled": N_("Logins were paused after repeated failures"),
    "audit.read": N_("%(who)s read the audit log"),
    "user.create": N_("%(who)s created an account"),
    "user.deactivate": N_("%(who)s deactivated an account"),
    "roster.rule_created": N_("%(who)s added roster hours"),
    "roster.rule_deleted": N_("%(who)s removed roster hours"),
    "roster.exception_created": N_("%(who)s added leave or extra hours"),
    "roster.exception_deleted": N_("%(who)s removed leave or extra hours"),
}
OTHER = N_("%(who)s: %(action)s")
SYSTEM = N_("Dari")


def _blank_is_none(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _filters(request: Request) -> AuditFilter:
    """The form's fields, an empty one meaning "any"; a malformed one is refused (422)."""
    raw = {key: _blank_is_none(value) for key, value in request.query_params.items()}
    fields: dict[str, Any] = {k: v for k, v in raw.items() if v is not None}
    try:
        for name in ("actor_id", "before_seq", "limit"):
            if name in fields:
                fields[name] = int(fields[name])
        for name in ("since", "until"):
            if name in fields:
                fields[name] = datetime.fromisoformat(fields[name])
        return AuditFilter.model_validate(
            {k: v for k, v in fields.items() if k in AuditFilter.model_fields}
        )
    except ValueError:
        raise AppError(
            "validation_error",
            N_("Some of what was entered is not valid; check the form and try again."),
            422,
        ) from None


@router.get("/admin/audit")
def audit_page(request: Request, session: SessionDep, admin: AdminUser) -> Response:
    """Filter and read the organisation's audit events."""
    filters = _filters(request)
    events = search_for_admin(session, admin, filters, client_ip(request))
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    names = {
        u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(actor_ids))).all()
    }
    consult_ids = {e.object_id for e in events if e.object_type == "consult" and e.object_id}
    charts = {
        c.public_id: c.patient_chart_number
        for c in session.exec(
            select(ConsultRequest).where(col(ConsultRequest.public_id).in_(consult_ids))
        ).all()
    }
    older = filters.model_copy(update={"before_seq": events[-1].seq if events else None})
    return render(
        request,
        "audit/list.html",
        events=events,
        filters=filters,
        names=names,
        charts=charts,
        sentences=SENTENCES,
        other=OTHER,
        system=SYSTEM,
        next_query=urlencode(older.model_dump(mode="json", exclude_none=True)),
    )
