"""Scheduling API: rosters, slot search, appointments, urgent rings, calendar feeds."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from server.accounts.deps import (
    ClinicianUser,
    CurrentUser,
    GPUser,
    SettingsDep,
    SpecialistUser,
    client_ip,
)
from server.accounts.models import Organisation, Role
from server.clock import utcnow
from server.consults.models import ConsultRequest
from server.db import SessionDep
from server.errors import NotFound
from server.scheduling import booking, calendar, rosters, search, urgent, urgent_views
from server.scheduling.models import Appointment, RosterException, RosterRule, UrgentRequest
from server.scheduling.schemas import (
    AppointmentOut,
    BookIn,
    CancelIn,
    ExceptionIn,
    ExceptionOut,
    FeedOut,
    OnCallOut,
    RescheduleIn,
    RingOut,
    RingsOut,
    RuleIn,
    RuleOut,
    SlotOut,
    UrgentIn,
    UrgentOut,
)
from server.settings import Settings
from server.validation import EdgeDateTime, OptionalQueryId, PathId, QueryId

router = APIRouter(prefix="/api", tags=["scheduling"])
feeds = APIRouter(tags=["scheduling"])


def rule_out(rule: RosterRule) -> RuleOut:
    return RuleOut.model_validate(rule, from_attributes=True)


def exception_out(item: RosterException) -> ExceptionOut:
    return ExceptionOut.model_validate(item, from_attributes=True)


def appointment_out(appointment: Appointment, consult: ConsultRequest) -> AppointmentOut:
    return AppointmentOut(
        id=appointment.id or 0,
        consult_id=consult.public_id,
        specialist_id=appointment.specialist_id,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        status=appointment.status,
        reason=appointment.reason,
    )


# --- rosters ------------------------------------------------------------------------


@router.get("/rosters/{specialist_id}/rules", response_model=list[RuleOut])
def get_rules(specialist_id: PathId, session: SessionDep, user: CurrentUser) -> list[RuleOut]:
    """A specialist's weekly rules (the specialist or their hospital's admin)."""
    rosters.roster_owner(session, user, specialist_id)
    return [rule_out(r) for r in rosters.list_rules(session, specialist_id)]


@router.post("/rosters/{specialist_id}/rules", response_model=RuleOut, status_code=201)
def post_rule(
    specialist_id: PathId, body: RuleIn, request: Request, session: SessionDep, user: CurrentUser
) -> RuleOut:
    """Add a weekly rule (local times of the hospital)."""
    rule = rosters.create_rule(session, user, specialist_id, body, ip=client_ip(request))
    return rule_out(rule)


@router.put("/rosters/rules/{rule_id}", response_model=RuleOut)
def put_rule(
    rule_id: PathId, body: RuleIn, request: Request, session: SessionDep, user: CurrentUser
) -> RuleOut:
    """Change a weekly rule."""
    return rule_out(rosters.update_rule(session, user, rule_id, body, ip=client_ip(request)))


@router.delete("/rosters/rules/{rule_id}", status_code=204)
def remove_rule(
    rule_id: PathId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """Delete a weekly rule (booked appointments stay)."""
    rosters.delete_rule(session, user, rule_id, ip=client_ip(request))
    return Response(status_code=204)


@router.get("/rosters/{specialist_id}/exceptions", response_model=list[ExceptionOut])
def get_exceptions(
    specialist_id: PathId, session: SessionDep, user: CurrentUser
) -> list[ExceptionOut]:
    """A specialist's leave and extra hours."""
    rosters.roster_owner(session, user, specialist_id)
    return [exception_out(e) for e in rosters.list_exceptions(session, specialist_id)]


@router.post("/rosters/{specialist_id}/exceptions", response_model=ExceptionOut, status_code=201)
def post_exception(
    specialist_id: PathId,
    body: ExceptionIn,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
) -> ExceptionOut:
    """Add leave (whole days or hours) or one-off extra hours."""
    item = rosters.create_exception(session, user, specialist_id, body, ip=client_ip(request))
    return exception_out(item)


@router.delete("/rosters/exceptions/{exception_id}", status_code=204)
def remove_exception(
    exception_id: PathId, request: Request, session: SessionDep, user: CurrentUser
) -> Response:
    """Delete leave or extra hours."""
    rosters.delete_exception(session, user, exception_id, ip=client_ip(request))
    return Response(status_code=204)


# --- slots and appointments ---------------------------------------------------------


@router.get("/slots", response_model=list[SlotOut])
def get_slots(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    specialty_id: QueryId,
    start: Annotated[EdgeDateTime | None, Query()] = None,
    end: Annotated[EdgeDateTime | None, Query()] = None,
    organisation_id: OptionalQueryId = None,
    region_id: OptionalQueryId = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[SlotOut]:
    """Free slots, best first; each says why it ranks where it does."""
    start = start or utcnow()
    end = end or start + timedelta(days=14)
    home = session.get(Organisation, user.organisation_id)
    found = search.search_slots(
        session,
        specialty_id=specialty_id,
        start=start,
        end=end,
        home_region_id=home.region_id if home else None,
        policy=settings.routing_policy,
        organisation_id=organisation_id,
        region_id=region_id,
        limit=limit,
        max_days=settings.slot_search_max_days,
    )
    return [SlotOut.model_validate(slot.as_dict()) for slot in found]


@router.post("/appointments", response_model=AppointmentOut, status_code=201)
def post_appointment(
    body: BookIn, request: Request, session: SessionDep, settings: SettingsDep, user: GPUser
) -> AppointmentOut:
    """Book a slot for one of the clinic's consults (409 with next free slots if taken)."""
    consult = booking.consult_for_booking(session, user, body.consult_id)
    appointment = booking.book(
        session,
        user,
        consult,
        body.specialist_id,
        body.starts_at,
        policy=settings.routing_policy,
        ip=client_ip(request),
    )
    return appointment_out(appointment, consult)


@router.get("/appointments", response_model=list[AppointmentOut])
def get_appointments(
    session: SessionDep, user: ClinicianUser, include_ended: bool = False
) -> list[AppointmentOut]:
    """The specialist's own appointments, or the GP's clinic's."""
    rows = booking.appointments_of(session, user, include_ended=include_ended)
    return [appointment_out(a, c) for a, c in rows]


@router.post("/appointments/{appointment_id}/cancel", response_model=AppointmentOut)
def cancel_appointment(
    appointment_id: PathId,
    body: CancelIn,
    request: Request,
    session: SessionDep,
    user: ClinicianUser,
) -> AppointmentOut:
    """Cancel with a reason; the other side is notified and the slot is free again."""
    appointment = booking.cancel(session, user, appointment_id, body.reason, ip=client_ip(request))
    _, consult = booking.appointment_for(session, user, appointment_id)
    return appointment_out(appointment, consult)


@router.post("/appointments/{appointment_id}/reschedule", response_model=AppointmentOut)
def reschedule_appointment(
    appointment_id: PathId,
    body: RescheduleIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ClinicianUser,
) -> AppointmentOut:
    """Move to another slot, with a reason; the other side is notified."""
    new = booking.reschedule(
        session,
        user,
        appointment_id,
        body.starts_at,
        body.reason,
        specialist_id=body.specialist_id,
        policy=settings.routing_policy,
        ip=client_ip(request),
    )
    consult = session.get(ConsultRequest, new.consult_request_id)
    assert consult is not None
    return appointment_out(new, consult)


# --- urgent -------------------------------------------------------------------------


@router.get("/oncall", response_model=list[OnCallOut])
def get_oncall(
    session: SessionDep,
    user: CurrentUser,
    specialty_id: QueryId,
    region_id: OptionalQueryId = None,
) -> list[OnCallOut]:
    """Who is on call now for a specialty (regional first)."""
    if region_id is None:
        home = session.get(Organisation, user.organisation_id)
        region_id = home.region_id if home else None
    return [
        OnCallOut(
            specialist_id=o.specialist.id or 0,
            specialist_name=o.specialist.name,
            organisation_id=o.organisation.id or 0,
            organisation_name=o.organisation.name_ko,
            regional=o.regional,
        )
        for o in urgent.oncall_now(session, specialty_id, utcnow(), region_id)
    ]


def ring_out(item: urgent_views.Card) -> RingOut:
    return RingOut(
        urgent_id=item.urgent.id or 0,
        consult_id=item.consult.public_id,
        urgency=item.consult.urgency,
        patient_age=item.consult.patient_age,
        patient_sex=item.consult.patient_sex,
        question=item.question,
        level=item.urgent.level,
        started_at=item.urgent.started_at,
        taken_by_id=item.urgent.accepted_by_id,
        taken_by_name=item.taken_by.name if item.taken_by else None,
        taken_at=item.urgent.accepted_at,
    )


@router.get("/urgent/rings", response_model=RingsOut)
def get_rings(session: SessionDep, user: CurrentUser) -> RingsOut:
    """What rings for the caller now (state, as the home page's panel shows it)."""
    panel = urgent_views.panel_for(session, user, utcnow())
    return RingsOut(
        ringing=[ring_out(c) for c in panel.ringing],
        taken=[ring_out(c) for c in panel.taken],
        mine=[ring_out(c) for c in panel.mine],
        alerts=[ring_out(c) for c in panel.alerts],
        pool_count=panel.pool_count,
    )


def urgent_out(session: SessionDep, item: UrgentRequest) -> UrgentOut:
    consult = session.get(ConsultRequest, item.consult_request_id)
    assert consult is not None
    return UrgentOut(
        id=item.id or 0,
        consult_id=consult.public_id,
        level=item.level,
        status=item.status,
        rung=urgent.rung_ids(session, item.id or 0),
        accepted_by_id=item.accepted_by_id,
    )


@router.post("/urgent", response_model=UrgentOut, status_code=201)
def post_urgent(
    body: UrgentIn,
    request: Request,
    session: SessionDep,
    user: GPUser,
) -> UrgentOut:
    """Ring the on-call specialists for one of the clinic's consults."""
    consult = booking.consult_for_booking(session, user, body.consult_id)
    item = urgent.start_urgent(session, user, consult, ip=client_ip(request))
    return urgent_out(session, item)


@router.get("/urgent/{urgent_id}", response_model=UrgentOut)
def get_urgent(urgent_id: PathId, session: SessionDep, user: ClinicianUser) -> UrgentOut:
    """An urgent ring, for the clinic that started it or a specialist it rang."""
    item = session.get(UrgentRequest, urgent_id)
    if item is None:
        raise NotFound("urgent request")
    consult = session.get(ConsultRequest, item.consult_request_id)
    allowed = (
        consult is not None
        and user.role == Role.GP
        and user.organisation_id == consult.organisation_id
    ) or (user.id in urgent.rung_ids(session, urgent_id))
    if not allowed:
        raise NotFound("urgent request")
    return urgent_out(session, item)


@router.post("/urgent/{urgent_id}/accept", response_model=UrgentOut)
def accept_urgent(
    urgent_id: PathId, request: Request, session: SessionDep, user: SpecialistUser
) -> UrgentOut:
    """Take the urgent consult (the same service as the inbox's button); 409 when another
    specialist was first."""
    item = urgent.accept(session, user, urgent_id, ip=client_ip(request))
    return urgent_out(session, item)


# --- calendar feed ------------------------------------------------------------------


def feed_url(settings: Settings, token: str) -> str:
    """The secret feed URL, from the configured public address (never the Host header)."""
    return settings.public_url(f"/calendar/{token}.ics")


@router.post("/calendar/feed", response_model=FeedOut, status_code=201)
def renew_feed(
    request: Request, session: SessionDep, settings: SettingsDep, user: SpecialistUser
) -> FeedOut:
    """A new secret feed URL (shown once); the old one stops working."""
    token = calendar.renew_feed(session, user, ip=client_ip(request))
    return FeedOut(url=feed_url(settings, token))


@router.delete("/calendar/feed", status_code=204)
def revoke_feed(request: Request, session: SessionDep, user: SpecialistUser) -> Response:
    """Stop the feed URL working."""
    if not calendar.revoke_feed(session, user, ip=client_ip(request)):
        raise NotFound("calendar feed")
    return Response(status_code=204)


@feeds.get("/calendar/{token}.ics", name="calendar_feed")
def calendar_feed(token: str, session: SessionDep, settings: SettingsDep) -> Response:
    """The feed itself: the secret in the URL is the only credential (calendar apps)."""
    specialist = calendar.specialist_for_token(session, token)
    if specialist is None or not specialist.active:
        raise NotFound("calendar feed")
    body = calendar.feed_ics(session, specialist, settings.public_url("/"))
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"},
    )
