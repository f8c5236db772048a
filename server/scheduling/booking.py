"""Booking: book, reschedule and cancel appointments, moving the consult through its states."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.accounts.models import Role, User
from server.audit import service as audit
from server.clock import utcnow
from server.consults import access, lifecycle
from server.consults.models import ConsultRequest, ConsultStatus
from server.db import unique_name, violated_constraint
from server.errors import AppError, Conflict, Forbidden, NotFound
from server.notifications import service as notifications
from server.scheduling.errors import SlotTaken
from server.scheduling.models import Appointment, AppointmentStatus
from server.scheduling.rosters import organisation_of
from server.scheduling.search import next_free, offered_slot

# Appointment's partial unique indexes (declared in models), named by the database when
# a racing insert loses: the slot was booked meanwhile, or the consult was.
SLOT_BOOKED = unique_name("appointment", ["specialist_id", "starts_at"])
CONSULT_BOOKED = unique_name("appointment", ["consult_request_id"])


def consult_for_booking(session: Session, actor: User, consult_public_id: str) -> ConsultRequest:
    """The GP's own clinic's consult; any other clinic's is reported absent."""
    return access.load_consult(session, actor, consult_public_id, need=access.Need.CLINIC).consult


def _mark_scheduled(
    session: Session, consult: ConsultRequest, specialist: User, actor: User, ip: str
) -> None:
    """Booking moves the consult to scheduled, through the consult state machine."""
    lifecycle.transition(
        session, consult, ConsultStatus.SCHEDULED, actor, "booked", ip=ip, specialist=specialist
    )


def _mark_unscheduled(
    session: Session, consult: ConsultRequest, actor: User, reason: str, ip: str
) -> None:
    """A withdrawn appointment hands the consult back to the pool (state machine)."""
    if consult.status == ConsultStatus.SCHEDULED:
        lifecycle.transition(session, consult, ConsultStatus.REQUESTED, actor, reason, ip=ip)


def book(
    session: Session,
    actor: User,
    consult: ConsultRequest,
    specialist_id: int,
    starts_at: datetime,
    *,
    policy: str = "regional_first",
    ip: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Book a roster slot for a consult; the database refuses a second booking of it."""
    now = now or utcnow()
    starts_at = starts_at.astimezone(UTC)
    specialist = session.get(User, specialist_id)
    if (
        specialist is None
        or specialist.role != Role.SPECIALIST
        or not specialist.active
        or specialist.specialty_id != consult.specialty_id
    ):
        raise NotFound("specialist")
    if consult.status not in lifecycle.BOOKABLE:
        raise Conflict(
            "not_bookable",
            "a consult that is %(status)s cannot be booked",
            params={"status": consult.status},
        )
    if consult.assigned_specialist_id not in (None, specialist_id):
        raise Conflict("assigned_elsewhere", "another specialist has taken this consult")
    if starts_at < now:
        raise AppError("slot_in_past", "this slot has already begun", 422)
    home_region = organisation_of(session, actor).region_id
    if offered_slot(session, specialist, starts_at, include_booked=False) is None:
        raise AppError("not_a_slot", "the specialist's roster offers no slot at that time", 422)
    slot = offered_slot(session, specialist, starts_at, include_booked=True)
    if slot is None:
        raise SlotTaken(next_free(session, consult, starts_at, home_region, policy))
    appointment = Appointment(
        consult_request_id=consult.id or 0,
        specialist_id=specialist_id,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        booked_by_id=actor.id or 0,
    )
    # The check above can pass in two requests at once (PostgreSQL); the partial unique
    # index then refuses the second insert. The savepoint keeps the session usable to
    # answer with the next free slots, and the request still writes nothing.
    try:
        with session.begin_nested():
            session.add(appointment)
            session.flush()
    except IntegrityError as error:
        constraint = violated_constraint(error)
        if constraint == CONSULT_BOOKED:
            raise Conflict("already_scheduled", "this consult already has an appointment") from None
        if constraint == SLOT_BOOKED:
            raise SlotTaken(next_free(session, consult, starts_at, home_region, policy)) from None
        raise
    _mark_scheduled(session, consult, specialist, actor, ip)
    audit.record(
        session,
        "appointment.booked",
        actor_id=actor.id,
        ip=ip,
        object_type="appointment",
        object_id=appointment.id or 0,
        organisation_id=consult.organisation_id,
        detail={"specialist_id": specialist_id, "starts_at": slot.starts_at.isoformat()},
    )
    notifications.notify(
        session,
        specialist_id,
        "appointment.booked",
        {
            "appointment_id": appointment.id,
            "consult_id": consult.public_id,
            "starts_at": slot.starts_at.isoformat(),
        },
    )
    return appointment


def appointment_for(
    session: Session, actor: User, appointment_id: int
) -> tuple[Appointment, ConsultRequest]:
    """An appointment the actor takes part in: the clinic's GP or the specialist."""
    appointment = session.get(Appointment, appointment_id)
    if appointment is None:
        raise NotFound("appointment")
    consult = session.get(ConsultRequest, appointment.consult_request_id)
    if consult is None:  # pragma: no cover - foreign key
        raise NotFound("appointment")
    is_clinic = actor.role == Role.GP and actor.organisation_id == consult.organisation_id
    if not (is_clinic or actor.id == appointment.specialist_id):
        raise NotFound("appointment")
    return appointment, consult


def active_appointment(session: Session, consult_id: int) -> Appointment | None:
    """The consult's booked (active) appointment, if any."""
    return session.exec(
        select(Appointment).where(
            Appointment.consult_request_id == consult_id,
            Appointment.status == AppointmentStatus.ACTIVE,
        )
    ).first()


def _other_side(actor: User, appointment: Appointment, consult: ConsultRequest) -> int:
    return (
        consult.requester_id if actor.id == appointment.specialist_id else appointment.specialist_id
    )


def cancel(
    session: Session, actor: User, appointment_id: int, reason: str, *, ip: str = ""
) -> Appointment:
    """Cancel with a reason; the slot is free again and the other side is told."""
    appointment, consult = appointment_for(session, actor, appointment_id)
    _end(session, actor, appointment, AppointmentStatus.CANCELLED, reason)
    _mark_unscheduled(session, consult, actor, reason, ip)
    audit.record(
        session,
        "appointment.cancelled",
        actor_id=actor.id,
        ip=ip,
        object_type="appointment",
        object_id=appointment_id,
        organisation_id=consult.organisation_id,
        detail={"reason": reason},
    )
    notifications.notify(
        session,
        _other_side(actor, appointment, consult),
        "appointment.cancelled",
        {"appointment_id": appointment_id, "consult_id": consult.public_id, "reason": reason},
    )
    return appointment


def _end(
    session: Session, actor: User, appointment: Appointment, status: AppointmentStatus, reason: str
) -> None:
    if appointment.status != AppointmentStatus.ACTIVE:
        raise Conflict("not_active", "this appointment is no longer active")
    if len(reason.strip()) < 3:
        raise AppError("reason_required", "give a reason", 422)
    appointment.status = status
    appointment.sequence += 1  # the calendar event changed (RFC 5545 SEQUENCE)
    appointment.reason = reason.strip()
    appointment.ended_by_id = actor.id
    appointment.ended_at = utcnow()
    session.add(appointment)
    session.flush()


def reschedule(
    session: Session,
    actor: User,
    appointment_id: int,
    starts_at: datetime,
    reason: str,
    *,
    specialist_id: int | None = None,
    policy: str = "regional_first",
    ip: str = "",
) -> Appointment:
    """Move an appointment to another slot (all or nothing); the other side is told."""
    old, consult = appointment_for(session, actor, appointment_id)
    target = specialist_id or old.specialist_id
    if actor.role == Role.SPECIALIST and target != actor.id:
        raise Forbidden("a specialist can move an appointment only within their own roster")
    _end(session, actor, old, AppointmentStatus.RESCHEDULED, reason)
    # Through the state machine: scheduled -> requested -> scheduled (with the new slot's
    # specialist), so the consult's timeline shows the move and its reason.
    _mark_unscheduled(session, consult, actor, reason, ip)
    new = book(session, actor, consult, target, starts_at, policy=policy, ip=ip)
    # The same calendar event, moved: its UID stays, its SEQUENCE goes up.
    new.calendar_uid = old.calendar_uid or f"appointment-{old.id}@dari"
    new.sequence = old.sequence + 1
    session.add(new)
    session.flush()
    audit.record(
        session,
        "appointment.rescheduled",
        actor_id=actor.id,
        ip=ip,
        object_type="appointment",
        object_id=appointment_id,
        organisation_id=consult.organisation_id,
        detail={"new_appointment_id": new.id, "reason": reason},
    )
    notifications.notify(
        session,
        _other_side(actor, old, consult),
        "appointment.rescheduled",
        {
            "appointment_id": new.id,
            "consult_id": consult.public_id,
            "starts_at": new.starts_at.isoformat(),
            "reason": reason,
        },
    )
    return new


def appointments_of(
    session: Session, actor: User, *, include_ended: bool = False
) -> list[tuple[Appointment, ConsultRequest]]:
    """The specialist's own appointments, or those of the GP's clinic."""
    query = select(Appointment, ConsultRequest).join(
        ConsultRequest, col(ConsultRequest.id) == col(Appointment.consult_request_id)
    )
    if actor.role == Role.SPECIALIST:
        query = query.where(Appointment.specialist_id == actor.id)
    elif actor.role == Role.GP:
        query = query.where(ConsultRequest.organisation_id == actor.organisation_id)
    else:
        return []
    if not include_ended:
        query = query.where(Appointment.status == AppointmentStatus.ACTIVE)
    rows = session.exec(query.order_by(col(Appointment.starts_at))).all()
    return [(a, c) for a, c in rows]
