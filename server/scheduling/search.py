"""Slot search: free roster slots ranked by regional routing policy, and what to offer instead."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from server.accounts.models import Organisation, Role, Specialty, User
from server.clock import utcnow
from server.consults.models import ConsultRequest
from server.scheduling import slots as grid
from server.scheduling.errors import InvalidSearch
from server.scheduling.models import (
    Appointment,
    AppointmentStatus,
    ExceptionKind,
    RosterException,
    RosterRule,
    RuleKind,
)
from server.scheduling.rosters import organisation_of, zone

POLICIES = ("regional_first", "earliest")


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
        raise InvalidSearch(
            "window_too_long",
            "search at most %(days)s days at a time",
            params={"days": max_days},
        )


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
        raise InvalidSearch(
            "unknown_policy",
            "routing policy must be one of %(policies)s",
            params={"policies": str(POLICIES)},
        )
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
