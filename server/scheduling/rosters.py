"""Rosters: weekly rules, leave and extra hours, checked and kept in the hospital's local time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, col, select

from server.accounts.models import Organisation, Role, User
from server.audit import service as audit
from server.errors import Conflict, Forbidden, NotFound
from server.scheduling import slots as grid
from server.scheduling.errors import InvalidRoster
from server.scheduling.models import ExceptionKind, RosterException, RosterRule
from server.scheduling.schemas import ExceptionIn, RuleIn
from web.render import N_


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Seoul")


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
            raise Conflict(
                "overlapping_rule",
                N_("These hours overlap another rule of the same kind; nothing was saved."),
                field="start_time",
                rule_id=other.id,
            )


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


def local_day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return (
        grid.wall_to_utc_lenient(day, 0, tz),
        grid.wall_to_utc_lenient(day + timedelta(days=1), 0, tz),
    )
