"""Rosters, slot search and booking: the rules, callable without HTTP."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from server.accounts.models import Organisation, Role, Specialty, User
from server.audit import service as audit
from server.clock import utcnow
from server.consults import lifecycle
from server.consults.access import Access, access_of
from server.consults.models import ConsultRequest, ConsultStatus
from server.errors import AppError, Conflict, Forbidden, NotFound
from server.notifications import service as notifications
from server.scheduling import slots as grid
from server.scheduling.errors import InvalidRoster, InvalidSearch, SlotTaken
from server.scheduling.models import (
    Appointment,
    AppointmentStatus,
    ExceptionKind,
    RosterException,
    RosterRule,
    RuleKind,
)
from server.scheduling.schemas import ExceptionIn, RuleIn

POLICIES = ("regional_first", "earliest")


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Seoul")


# --- rosters ------------------------------------------------------------------------


def roster_owner(session: Session, actor: User, specialist_id: int) -> User:
    """The specialist whose roster `actor` may manage: themself, or (admin) their hospital's."""
    specialist = session.get(User, specialist_id)
    if specialist is None or specialist.role != Role.SPECIALIST:
        raise NotFound("specialist")
    if actor.id == specialist.id:
        return specialist
    # Another hospital's roster is not even acknowledged to exist.
    if actor.organisation_id != specialist.organisation_id:
        raise NotFound("specialist")
    if actor.role == Role.ADMIN:
        return specialist
    raise Forbidden("only the specialist or their hospital's administrator may do this")


def as_weekly(rule: RosterRule | RuleIn) -> grid.WeeklyRule:
    return grid.WeeklyRule(
        rule.weekday,
        rule.start_time,
        rule.end_time,
        rule.slot_minutes,
        rule.valid_from,
        rule.valid_to,
    )


def _check_rule(session: Session, specialist_id: int, data: RuleIn, skip_id: int | None) -> None:
    start = grid.minutes_of(data.start_time)
    end = grid.minutes_of(data.end_time, is_end=True)
    if end <= start:
        raise InvalidRoster("end_before_start", "the end time must be after the start time")
    if data.slot_minutes <= 0:
        raise InvalidRoster("bad_slot_length", "the slot length must be at least one minute")
    if data.slot_minutes > end - start:
        raise InvalidRoster("bad_slot_length", "the slot is longer than the hours")
    if data.valid_to is not None and data.valid_to < data.valid_from:
        raise InvalidRoster("end_before_start", "valid_to is before valid_from")
    others = session.exec(
        select(RosterRule).where(
            RosterRule.specialist_id == specialist_id,
            RosterRule.kind == data.kind,
            RosterRule.weekday == data.weekday,
        )
    ).all()
    mine = as_weekly(data)
    for other in others:
        if other.id != skip_id and grid.rules_overlap(mine, as_weekly(other)):
            raise Conflict("overlapping_rule", "these hours overlap another rule", rule_id=other.id)


def list_rules(session: Session, specialist_id: int) -> list[RosterRule]:
    return list(
        session.exec(
            select(RosterRule)
            .where(RosterRule.specialist_id == specialist_id)
            .order_by(col(RosterRule.kind), col(RosterRule.weekday), col(RosterRule.start_time))
        ).all()
    )


def create_rule(
    session: Session, actor: User, specialist_id: int, data: RuleIn, *, ip: str = ""
) -> RosterRule:
    """Add a weekly rule after checking hours, slot length and overlaps."""
    specialist = roster_owner(session, actor, specialist_id)
    _check_rule(session, specialist_id, data, None)
    rule = RosterRule(specialist_id=specialist_id, **data.model_dump())
    session.add(rule)
    session.flush()
    audit.record(
        session,
        "roster.rule_created",
        actor_id=actor.id,
        ip=ip,
        object_type="rosterrule",
        object_id=rule.id or 0,
        organisation_id=specialist.organisation_id,
        detail={"specialist_id": specialist_id, "weekday": data.weekday, "kind": data.kind},
    )
    return rule


def update_rule(
    session: Session, actor: User, rule_id: int, data: RuleIn, *, ip: str = ""
) -> RosterRule:
    rule = session.get(RosterRule, rule_id)
    if rule is None:
        raise NotFound("rule")
    specialist = roster_owner(session, actor, rule.specialist_id)
    _check_rule(session, rule.specialist_id, data, rule.id)
    for key, value in data.model_dump().items():
        setattr(rule, key, value)
    session.add(rule)
    session.flush()
    audit.record(
        session,
        "roster.rule_updated",
        actor_id=actor.id,
        ip=ip,
        object_type="rosterrule",
        object_id=rule_id,
        organisation_id=specialist.organisation_id,
    )
    return rule


def delete_rule(session: Session, actor: User, rule_id: int, *, ip: str = "") -> None:
    rule = session.get(RosterRule, rule_id)
    if rule is None:
        raise NotFound("rule")
    specialist = roster_owner(session, actor, rule.specialist_id)
    session.delete(rule)
    session.flush()
    audit.record(
        session,
        "roster.rule_deleted",
        actor_id=actor.id,
        ip=ip,
        object_type="rosterrule",
        object_id=rule_id,
        organisation_id=specialist.organisation_id,
    )


def organisation_of(session: Session, user: User) -> Organisation:
    organisation = session.get(Organisation, user.organisation_id)
    if organisation is None:  # pragma: no cover - the foreign key forbids it
        raise NotFound("organisation")
    return organisation


def exception_interval(data: ExceptionIn, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC interval of an exception entered in local dates and times."""
    if data.start_time is None and data.end_time is None:
        if data.kind == ExceptionKind.EXTRA:
            raise InvalidRoster("missing_hours", "extra hours need a start and an end time")
        last = data.date_to or data.date_from
        if last < data.date_from:
            raise InvalidRoster("end_before_start", "the last day is before the first")
        if (last - data.date_from).days > 366:
            raise InvalidRoster("too_long", "leave longer than a year")
        starts = grid.wall_to_utc_lenient(data.date_from, 0, tz)
        ends = grid.wall_to_utc_lenient(last + timedelta(days=1), 0, tz)
        return starts, ends
    if data.start_time is None or data.end_time is None:
        raise InvalidRoster("missing_hours", "give both a start and an end time")
    if data.date_to is not None and data.date_to != data.date_from:
        raise InvalidRoster("bad_dates", "hours apply to one day; use whole days for longer leave")
    start = grid.minutes_of(data.start_time)
    end = grid.minutes_of(data.end_time, is_end=True)
    if end <= start:
        raise InvalidRoster("end_before_start", "the end time must be after the start time")
    return (
        grid.wall_to_utc_lenient(data.date_from, start, tz),
        grid.wall_to_utc_lenient(data.date_from, end, tz),
    )


def create_exception(
    session: Session, actor: User, specialist_id: int, data: ExceptionIn, *, ip: str = ""
) -> RosterException:
    """Add leave or extra hours, entered in the hospital's local time."""
    specialist = roster_owner(session, actor, specialist_id)
    tz = zone(organisation_of(session, specialist).timezone)
    starts_at, ends_at = exception_interval(data, tz)
    if data.kind == ExceptionKind.EXTRA and data.slot_minutes > (ends_at - starts_at) / timedelta(
        minutes=1
    ):
        raise InvalidRoster("bad_slot_length", "the slot is longer than the hours")
    item = RosterException(
        specialist_id=specialist_id,
        kind=data.kind,
        starts_at=starts_at,
        ends_at=ends_at,
        slot_minutes=data.slot_minutes,
        note=data.note,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        "roster.exception_created",
        actor_id=actor.id,
        ip=ip,
        object_type="rosterexception",
        object_id=item.id or 0,
        organisation_id=specialist.organisation_id,
        detail={"specialist_id": specialist_id, "kind": data.kind},
    )
    return item


def list_exceptions(session: Session, specialist_id: int) -> list[RosterException]:
    return list(
        session.exec(
            select(RosterException)
            .where(RosterException.specialist_id == specialist_id)
            .order_by(col(RosterException.starts_at))
        ).all()
    )


def delete_exception(session: Session, actor: User, exception_id: int, *, ip: str = "") -> None:
    item = session.get(RosterException, exception_id)
    if item is None:
        raise NotFound("exception")
    specialist = roster_owner(session, actor, item.specialist_id)
    session.delete(item)
    session.flush()
    audit.record(
        session,
        "roster.exception_deleted",
        actor_id=actor.id,
        ip=ip,
        object_type="rosterexception",
        object_id=exception_id,
        organisation_id=specialist.organisation_id,
    )


# --- slot search --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    specialist_id: int
    name: str
    organisation_id: int
    organisation_name: str
    region_id: int
    is_hub: bool
    timezone: str


@dataclass(frozen=True, slots=True)
class Slot:
    candidate: Candidate
    starts_at: datetime
    ends_at: datetime
    tier: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        c = self.candidate
        return {
            "specialist_id": c.specialist_id,
            "specialist_name": c.name,
            "organisation_id": c.organisation_id,
            "organisation_name": c.organisation_name,
            "region_id": c.region_id,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "tier": self.tier,
            "reason": self.reason,
        }


def rank(candidate: Candidate, policy: str, home_region_id: int | None) -> tuple[int, str]:
    """Which tier a specialist's slots fall in, and why (shown to the GP)."""
    if policy == "earliest" or home_region_id is None:
        return 0, "earliest: ranked by start time only"
    if candidate.region_id == home_region_id and candidate.is_hub:
        return 0, "regional_hub: a hub hospital of your region, offered first"
    if candidate.region_id == home_region_id:
        return 1, "same_region: a hospital of your region, after the regional hubs"
    return 2, "national: outside your region, after every regional slot"


def _candidates(
    session: Session,
    specialty_id: int,
    organisation_id: int | None,
    region_id: int | None,
    specialist_id: int | None = None,
) -> list[Candidate]:
    query = (
        sa_select(
            col(User.id),
            col(User.name),
            col(Organisation.id),
            col(Organisation.name_ko),
            col(Organisation.region_id),
            col(Organisation.is_hub),
            col(Organisation.timezone),
        )
        .join(Organisation, col(Organisation.id) == col(User.organisation_id))
        .where(
            col(User.role) == Role.SPECIALIST,
            col(User.active).is_(True),
            col(User.specialty_id) == specialty_id,
        )
    )
    if organisation_id is not None:
        query = query.where(col(Organisation.id) == organisation_id)
    if region_id is not None:
        query = query.where(col(Organisation.region_id) == region_id)
    if specialist_id is not None:
        query = query.where(col(User.id) == specialist_id)
    rows = session.connection().execute(query).all()
    return [Candidate(int(r[0] or 0), r[1], int(r[2] or 0), r[3], r[4], r[5], r[6]) for r in rows]


@dataclass
class _Calendar:
    rules: dict[int, list[grid.WeeklyRule]]
    extras: dict[int, list[tuple[grid.Interval, int]]]
    leave: dict[int, list[grid.Interval]]
    booked: dict[int, list[grid.Interval]]

    def blocked(self, specialist_id: int, *, with_booked: bool = True) -> list[grid.Interval]:
        leave = self.leave.get(specialist_id, [])
        return leave + self.booked.get(specialist_id, []) if with_booked else leave


def _load_calendar(
    session: Session, ids: list[int], start: datetime, end: datetime, kind: str
) -> _Calendar:
    """Rules, exceptions and bookings of these specialists around the window: three queries."""
    cal = _Calendar({}, {}, {}, {})
    if not ids:
        return cal
    # Local dates of the window in any zone (UTC-12 to UTC+14); a rule's slots stay
    # within its local date, so no other rule can offer a slot that starts in the window.
    first_day = (start - timedelta(hours=15)).date()
    last_day = (end + timedelta(hours=15)).date()
    span = min(7, (last_day - first_day).days + 1)
    weekdays = sorted({(first_day + timedelta(days=n)).weekday() for n in range(span)})
    # Leave, extra hours and bookings that overlap a slot starting in the window (a slot
    # may end after the window).
    block_start, block_end = start, end + timedelta(days=1)
    connection = session.connection()
    rules = connection.execute(
        sa_select(
            col(RosterRule.specialist_id),
            col(RosterRule.weekday),
            col(RosterRule.start_time),
            col(RosterRule.end_time),
            col(RosterRule.slot_minutes),
            col(RosterRule.valid_from),
            col(RosterRule.valid_to),
        ).where(
            col(RosterRule.specialist_id).in_(ids),
            col(RosterRule.kind) == kind,
            col(RosterRule.weekday).in_(weekdays),
            col(RosterRule.valid_from) <= last_day,
            (col(RosterRule.valid_to).is_(None)) | (col(RosterRule.valid_to) >= first_day),
        )
    ).all()
    for sid, weekday, s, e, minutes, vf, vt in rules:
        cal.rules.setdefault(sid, []).append(grid.WeeklyRule(weekday, s, e, minutes, vf, vt))
    exceptions = connection.execute(
        sa_select(
            col(RosterException.specialist_id),
            col(RosterException.kind),
            col(RosterException.starts_at),
            col(RosterException.ends_at),
            col(RosterException.slot_minutes),
        ).where(
            col(RosterException.specialist_id).in_(ids),
            col(RosterException.starts_at) < block_end,
            col(RosterException.ends_at) > block_start,
        )
    ).all()
    for sid, ekind, s_at, e_at, minutes in exceptions:
        interval = grid.Interval(s_at, e_at)
        if ekind == ExceptionKind.LEAVE:
            cal.leave.setdefault(sid, []).append(interval)
        elif kind == RuleKind.CONSULT:
            cal.extras.setdefault(sid, []).append((interval, minutes))
    booked = session.exec(
        select(Appointment.specialist_id, Appointment.starts_at, Appointment.ends_at).where(
            col(Appointment.specialist_id).in_(ids),
            Appointment.status == AppointmentStatus.ACTIVE,
            col(Appointment.starts_at) < block_end,
            col(Appointment.ends_at) > block_start,
        )
    ).all()
    for sid, s_at, e_at in booked:
        cal.booked.setdefault(sid, []).append(grid.Interval(s_at, e_at))
    return cal


def check_window(start: datetime, end: datetime, max_days: int) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidSearch("naive_time", "give times with a UTC offset")
    if end <= start:
        raise InvalidSearch("end_before_start", "the window must end after it starts")
    if end - start > timedelta(days=max_days):
        raise InvalidSearch("window_too_long", f"search at most {max_days} days at a time")


def search_slots(
    session: Session,
    *,
    specialty_id: int,
    start: datetime,
    end: datetime,
    home_region_id: int | None,
    policy: str = "regional_first",
    organisation_id: int | None = None,
    region_id: int | None = None,
    specialist_id: int | None = None,
    limit: int = 20,
    now: datetime | None = None,
    max_days: int = 31,
) -> list[Slot]:
    """Free slots in the window, best first: by routing tier, then earliest."""
    check_window(start, end, max_days)
    if session.get(Specialty, specialty_id) is None:
        raise InvalidSearch("unknown_specialty", "no such specialty")
    if policy not in POLICIES:
        raise InvalidSearch("unknown_policy", f"routing policy must be one of {POLICIES}")
    now = now or utcnow()
    start = max(start.astimezone(UTC), now)
    end = end.astimezone(UTC)
    if end <= start:
        return []
    candidates = _candidates(session, specialty_id, organisation_id, region_id, specialist_id)
    tiers: dict[int, list[tuple[Candidate, str]]] = {}
    for candidate in candidates:
        tier, reason = rank(candidate, policy, home_region_id)
        tiers.setdefault(tier, []).append((candidate, reason))
    found: list[Slot] = []
    # Tier by tier, and within a tier piece by piece of the window (a day, two days,
    # four, the rest): rosters are loaded only as far as the answer needs them, and
    # the slots of each piece are merged lazily across specialists.
    for tier in sorted(tiers):
        members = tiers[tier]
        ids = [c.specialist_id for c, _ in members]
        last_end: dict[int, datetime] = {}
        for piece_start, piece_end in _pieces(start, end):
            cal = _load_calendar(session, ids, piece_start, piece_end, RuleKind.CONSULT)
            streams = [
                _slots_of(c, cal, piece_start, piece_end, end, tier, reason, last_end)
                for c, reason in members
                if c.specialist_id in cal.rules or c.specialist_id in cal.extras
            ]
            for slot in heapq.merge(
                *streams, key=lambda s: (s.starts_at, s.candidate.specialist_id)
            ):
                found.append(slot)
                if len(found) >= limit:
                    return found
    return found


def _pieces(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    piece_start = start
    for days in (1, 3, 7):
        piece_end = min(end, start + timedelta(days=days))
        if piece_end > piece_start:
            yield piece_start, piece_end
            piece_start = piece_end
    if end > piece_start:
        yield piece_start, end


def _slots_of(
    candidate: Candidate,
    cal: _Calendar,
    start: datetime,
    starts_before: datetime,
    end: datetime,
    tier: int,
    reason: str,
    last_end: dict[int, datetime],
) -> Iterator[Slot]:
    sid = candidate.specialist_id
    for interval in grid.free_slots(
        cal.rules.get(sid, []),
        cal.extras.get(sid, []),
        cal.blocked(sid),
        zone(candidate.timezone),
        start,
        end,
        starts_before=starts_before,
        previous_end=last_end.get(sid),
    ):
        last_end[sid] = interval.ends_at
        yield Slot(candidate, interval.starts_at, interval.ends_at, tier, reason)


def offered_slot(
    session: Session, specialist: User, starts_at: datetime, *, include_booked: bool
) -> grid.Interval | None:
    """The roster slot starting exactly at `starts_at`, if the roster offers one."""
    organisation = organisation_of(session, specialist)
    start = starts_at - timedelta(hours=6)
    end = starts_at + timedelta(hours=30)
    sid = specialist.id or 0
    cal = _load_calendar(session, [sid], start, end, RuleKind.CONSULT)
    for interval in grid.free_slots(
        cal.rules.get(sid, []),
        cal.extras.get(sid, []),
        cal.blocked(sid, with_booked=include_booked),
        zone(organisation.timezone),
        start,
        end,
    ):
        if interval.starts_at == starts_at:
            return interval
        if interval.starts_at > starts_at:
            return None
    return None


# --- booking ------------------------------------------------------------------------


def consult_for_booking(session: Session, actor: User, consult_public_id: str) -> ConsultRequest:
    """The GP's own clinic's consult; any other clinic's is reported absent."""
    consult = session.exec(
        select(ConsultRequest).where(ConsultRequest.public_id == consult_public_id)
    ).first()
    if consult is None or access_of(actor, consult) != Access.CLINIC:
        raise NotFound("consult")
    return consult


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


def next_free(
    session: Session,
    consult: ConsultRequest,
    after: datetime,
    home_region_id: int | None,
    policy: str,
) -> list[dict[str, Any]]:
    """What a GP who lost a slot is offered instead."""
    found = search_slots(
        session,
        specialty_id=consult.specialty_id,
        start=after,
        end=after + timedelta(days=14),
        home_region_id=home_region_id,
        policy=policy,
        limit=5,
    )
    return [slot.as_dict() for slot in found]


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
    if ConsultStatus.SCHEDULED not in lifecycle.allowed_from(consult.status):
        raise Conflict("not_bookable", f"a consult that is {consult.status} cannot be booked")
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
        if "consult" in str(error.orig).lower():
            raise Conflict("already_scheduled", "this consult already has an appointment") from None
        raise SlotTaken(next_free(session, consult, starts_at, home_region, policy)) from None
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


def _end(session: Session, actor: User, appointment: Appointment, status: str, reason: str) -> None:
    if appointment.status != AppointmentStatus.ACTIVE:
        raise Conflict("not_active", "this appointment is no longer active")
    if len(reason.strip()) < 3:
        raise AppError("reason_required", "give a reason", 422)
    appointment.status = status
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


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return (
        grid.wall_to_utc_lenient(day, 0, tz),
        grid.wall_to_utc_lenient(day + timedelta(days=1), 0, tz),
    )
