"""Plain pages: a specialist's roster, a GP's slot search and booking, appointments."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlmodel import col, select

from server.accounts.deps import ClinicianUser, CurrentUser, GPUser, SettingsDep, client_ip
from server.accounts.models import Organisation, Role, Specialty, User
from server.clock import utcnow
from server.db import SessionDep
from server.errors import INVALID, AppError
from server.scheduling import booking, calendar, rosters, search
from server.scheduling.errors import SlotTaken
from server.scheduling.models import RosterException, RosterRule
from server.scheduling.schemas import ExceptionIn, RuleIn
from server.settings import Settings
from server.validation import OptionalQueryId, PathId
from web.render import form_error, render

router = APIRouter(prefix="/schedule", include_in_schema=False)

M = TypeVar("M", bound=BaseModel)

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _validated(model: type[M], values: dict[str, Any]) -> M:
    """Form input through the API's schema; a bad field is a 422 page, never a 500."""
    try:
        return model.model_validate({k: v for k, v in values.items() if v not in ("", None)})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        # The page says one translated sentence; the detail stays for an API client.
        raise AppError(
            "validation_error",
            INVALID,
            422,
            field=field,
            extra={"detail": f"{field}: {first.get('msg', 'invalid')}"},
        ) from None


def _back(specialist_id: int) -> RedirectResponse:
    return RedirectResponse(f"/schedule/roster?specialist_id={specialist_id}", status_code=303)


def _roster_context(session: SessionDep, user: User, specialist: User) -> dict[str, Any]:
    organisation = rosters.organisation_of(session, specialist)
    colleagues: list[User] = []
    if user.role == Role.ADMIN:
        colleagues = list(
            session.exec(
                select(User)
                .where(
                    User.organisation_id == user.organisation_id,
                    User.role == Role.SPECIALIST,
                )
                .order_by(col(User.name))
            ).all()
        )
    return {
        "specialist": specialist,
        "organisation": organisation,
        "rules": rosters.list_rules(session, specialist.id or 0),
        "exceptions": rosters.list_exceptions(session, specialist.id or 0),
        "weekdays": WEEKDAYS,
        "colleagues": colleagues,
        "has_feed": calendar.has_feed(session, specialist),
        "tz": rosters.zone(organisation.timezone),
    }


@router.get("/roster")
def roster_page(
    request: Request, session: SessionDep, user: CurrentUser, specialist_id: OptionalQueryId = None
) -> Response:
    """A specialist's weekly rules, leave and extra hours."""
    if specialist_id is None:
        if user.role != Role.SPECIALIST:
            first = session.exec(
                select(User.id).where(
                    User.organisation_id == user.organisation_id, User.role == Role.SPECIALIST
                )
            ).first()
            if first is None:
                return render(request, "scheduling/roster.html", specialist=None, colleagues=[])
            specialist_id = first
        else:
            specialist_id = user.id or 0
    specialist = rosters.roster_owner(session, user, specialist_id)
    return render(request, "scheduling/roster.html", **_roster_context(session, user, specialist))


@router.post("/roster/{specialist_id}/rules")
def add_rule(
    specialist_id: PathId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    weekday: Annotated[str, Form()],
    start_time: Annotated[str, Form()],
    end_time: Annotated[str, Form()],
    valid_from: Annotated[str, Form()],
    slot_minutes: Annotated[str, Form()] = "20",
    kind: Annotated[str, Form()] = "consult",
    valid_to: Annotated[str, Form()] = "",
) -> Response:
    values = {
        "weekday": weekday,
        "start_time": start_time,
        "end_time": end_time,
        "slot_minutes": slot_minutes,
        "kind": kind,
        "valid_from": valid_from,
        "valid_to": valid_to,
    }
    try:
        data = _validated(RuleIn, values)
        rosters.create_rule(session, user, specialist_id, data, ip=client_ip(request))
    except AppError as refusal:
        if refusal.status in (401, 403, 404):
            raise
        # The form comes back with what was typed and the reason, in the user's language.
        specialist = rosters.roster_owner(session, user, specialist_id)
        return render(
            request,
            "scheduling/roster.html",
            status=refusal.status,
            rule_values=values,
            rule_error=form_error(request, refusal.template, refusal.params),
            **_roster_context(session, user, specialist),
        )
    return _back(specialist_id)


@router.post("/roster/rules/{rule_id}/delete")
def remove_rule(
    rule_id: PathId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    found = session.get(RosterRule, rule_id)
    specialist_id = found.specialist_id if found else 0
    rosters.delete_rule(session, user, rule_id, ip=client_ip(request))
    return _back(specialist_id)


@router.post("/roster/{specialist_id}/exceptions")
def add_exception(
    specialist_id: PathId,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    kind: Annotated[str, Form()],
    date_from: Annotated[str, Form()],
    date_to: Annotated[str, Form()] = "",
    start_time: Annotated[str, Form()] = "",
    end_time: Annotated[str, Form()] = "",
    slot_minutes: Annotated[str, Form()] = "20",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    data = _validated(
        ExceptionIn,
        {
            "kind": kind,
            "date_from": date_from,
            "date_to": date_to,
            "start_time": start_time,
            "end_time": end_time,
            "slot_minutes": slot_minutes,
            "note": note,
        },
    )
    rosters.create_exception(session, user, specialist_id, data, ip=client_ip(request))
    return _back(specialist_id)


@router.post("/roster/exceptions/{exception_id}/delete")
def remove_exception(
    exception_id: PathId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    found = session.get(RosterException, exception_id)
    specialist_id = found.specialist_id if found else 0
    rosters.delete_exception(session, user, exception_id, ip=client_ip(request))
    return _back(specialist_id)


@router.post("/calendar/renew")
def renew_feed(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """A new secret feed URL, shown once on the roster page."""
    if user.role != Role.SPECIALIST:
        raise AppError("forbidden", "only specialists have a calendar feed", 403)
    token = calendar.renew_feed(session, user, ip=client_ip(request))
    context = _roster_context(session, user, user)
    settings: Settings = request.app.state.settings
    context["feed_url"] = settings.public_url(f"/calendar/{token}.ics")
    return render(request, "scheduling/roster.html", **context)


@router.post("/calendar/revoke")
def revoke_feed(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    if user.role != Role.SPECIALIST:
        raise AppError("forbidden", "only specialists have a calendar feed", 403)
    calendar.revoke_feed(session, user, ip=client_ip(request))
    return _back(user.id or 0)


# --- GP: search and book ------------------------------------------------------------


def _parse_day(value: str | None) -> date:
    if not value:
        return utcnow().date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise AppError("validation_error", "start: not a date (YYYY-MM-DD)", 422) from None


@router.get("/book")
def book_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: GPUser,
    consult: str,
    start: str | None = None,
    days: int = 7,
) -> Response:
    """Free slots for one of the clinic's consults, best first, with a Book button each."""
    return _book_view(request, session, settings, user, consult, _parse_day(start), days)


# The slot list shows at most this many rows, and says so when it is cut.
SLOT_LIST_LIMIT = 50


def _book_view(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: User,
    consult_id: str,
    day: date,
    days: int,
    *,
    status: int = 200,
    error: str = "",
    slots: list[dict[str, Any]] | None = None,
) -> Response:
    consult = booking.consult_for_booking(session, user, consult_id)
    cut = 0
    home = session.get(Organisation, user.organisation_id)
    tz = rosters.zone(home.timezone if home else settings.default_timezone)
    start, _ = rosters.local_day_bounds(day, tz)
    if slots is None:
        found = search.search_slots(
            session,
            specialty_id=consult.specialty_id,
            start=start,
            end=start + timedelta(days=max(1, min(days, settings.slot_search_max_days))),
            home_region_id=home.region_id if home else None,
            policy=settings.routing_policy,
            limit=SLOT_LIST_LIMIT,
            max_days=settings.slot_search_max_days,
        )
        slots = [s.as_dict() for s in found]
        cut = SLOT_LIST_LIMIT if len(found) >= SLOT_LIST_LIMIT else 0
        if consult.assigned_specialist_id is not None:
            # An accepted consult can only be booked with its specialist: offer no others.
            slots = [s for s in slots if s["specialist_id"] == consult.assigned_specialist_id]
    for slot in slots:
        slot["starts_local"] = datetime.fromisoformat(slot["starts_at"]).astimezone(tz)
    return render(
        request,
        "scheduling/book.html",
        status=status,
        consult=consult,
        specialty=session.get(Specialty, consult.specialty_id),
        slots=slots,
        day=day,
        days=days,
        error=error,
        slots_cut=cut,  # the list was cut at this many rows (0: it is complete)
    )


@router.post("/book")
def book_submit(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: GPUser,
    consult: Annotated[str, Form(max_length=32)],
    specialist_id: Annotated[int, Form()],
    starts_at: Annotated[datetime, Form()],
) -> Response:
    """Book the chosen slot; a lost race shows the next free slots (409)."""
    record = booking.consult_for_booking(session, user, consult)
    if starts_at.tzinfo is None:
        raise AppError("naive_time", "starts_at needs a UTC offset", 422)
    try:
        booking.book(
            session,
            user,
            record,
            specialist_id,
            starts_at,
            policy=settings.routing_policy,
            ip=client_ip(request),
        )
    except SlotTaken as taken:
        session.rollback()
        return _book_view(
            request,
            session,
            settings,
            user,
            consult,
            starts_at.date(),
            7,
            status=409,
            error="taken",
            slots=list(taken.extra.get("next_slots", [])),
        )
    # Back to the consult, which confirms who, when and how to join.
    return RedirectResponse(f"/consults/{record.public_id}?booked=1#appointment", status_code=303)


@router.get("/appointments")
def appointments_page(request: Request, session: SessionDep, user: ClinicianUser) -> Response:
    """Upcoming appointments: the specialist's own, or the clinic's."""
    rows = booking.appointments_of(session, user)
    return render(request, "scheduling/appointments.html", rows=rows)


@router.post("/appointments/{appointment_id}/cancel")
def cancel_submit(
    appointment_id: PathId,
    request: Request,
    session: SessionDep,
    user: ClinicianUser,
    reason: Annotated[str, Form(max_length=500)],
) -> Response:
    booking.cancel(session, user, appointment_id, reason, ip=client_ip(request))
    return RedirectResponse("/schedule/appointments", status_code=303)
