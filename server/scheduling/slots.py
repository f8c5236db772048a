"""Slot generation from roster rules: pure functions, no database (property-tested).

Rules hold wall-clock times in the organisation's zone. Each slot start is a wall-clock
time converted to UTC; a start that does not exist (the hour skipped when clocks go
forward) is not offered, and in the repeated hour (clocks go back) only the first
occurrence is used. Slots are `slot_minutes` long in real (UTC) time, so a slot never
overlaps the next one, even across a DST change.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MIDNIGHT = time(0, 0)


@dataclass(frozen=True, slots=True)
class WeeklyRule:
    weekday: int  # 0 = Monday
    start: time
    end: time  # 00:00 means the end of the day (24:00)
    slot_minutes: int
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True, slots=True)
class Interval:
    starts_at: datetime  # aware UTC
    ends_at: datetime


def minutes_of(value: time, *, is_end: bool = False) -> int:
    """Minutes after midnight; an end time of 00:00 is midnight at the end of the day."""
    if is_end and value == MIDNIGHT:
        return 24 * 60
    return value.hour * 60 + value.minute


def rule_applies(rule: WeeklyRule, day: date) -> bool:
    if day.weekday() != rule.weekday or day < rule.valid_from:
        return False
    return rule.valid_to is None or day <= rule.valid_to


def wall_to_utc(day: date, minutes: int, tz: ZoneInfo) -> datetime | None:
    """UTC instant of a local wall-clock time, or None when that time does not exist."""
    naive = datetime.combine(day, MIDNIGHT) + timedelta(minutes=minutes)
    local = naive.replace(tzinfo=tz)  # fold=0: the first of a repeated hour
    utc = local.astimezone(UTC)
    if utc.astimezone(tz).replace(tzinfo=None) != naive:
        return None  # skipped by a spring-forward change
    return utc


def wall_to_utc_lenient(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """Like wall_to_utc, but a skipped time maps to the instant the clocks jumped past it."""
    exact = wall_to_utc(day, minutes, tz)
    if exact is not None:
        return exact
    naive = datetime.combine(day, MIDNIGHT) + timedelta(minutes=minutes)
    # fold=0 reads a skipped time with the offset from before the change, which lands
    # after the change; step back to the change itself (at most the gap, minute by minute).
    instant = naive.replace(tzinfo=tz).astimezone(UTC)
    after = instant.astimezone(tz).utcoffset()
    minute = timedelta(minutes=1)
    for _ in range(24 * 60):
        if (instant - minute).astimezone(tz).utcoffset() != after:
            break
        instant -= minute
    return instant


@lru_cache(maxsize=8192)
def steady_offset(day: date, tz: ZoneInfo) -> timedelta | None:
    """The zone's UTC offset all through a local date, or None if the clocks change that day."""
    midnight = datetime.combine(day, MIDNIGHT)
    here = tz.utcoffset(midnight)
    there = tz.utcoffset(midnight + timedelta(days=1))
    return here if here is not None and here == there else None


def rule_slots(
    rule: WeeklyRule, day: date, tz: ZoneInfo, not_before: datetime | None = None
) -> Iterator[Interval]:
    """The slots one rule offers on one local date, in time order, never overlapping.

    `not_before` only saves work: slots starting earlier may be skipped.
    """
    if not rule_applies(rule, day):
        return
    step = rule.slot_minutes
    start = minutes_of(rule.start)
    end = minutes_of(rule.end, is_end=True)
    length = timedelta(minutes=step)
    offset = steady_offset(day, tz)
    if offset is not None:
        # The common case: no clock change today, so local time is UTC plus one offset.
        base = datetime.combine(day, MIDNIGHT, tzinfo=UTC) - offset
        if not_before is not None and not_before > base + timedelta(minutes=start):
            late = (not_before - base) // timedelta(minutes=1) - start
            start += -(-late // step) * step  # the first grid point at or after not_before
        for minute in range(start, end - step + 1, step):
            starts_at = base + timedelta(minutes=minute)
            yield Interval(starts_at, starts_at + length)
        return
    end_utc = wall_to_utc_lenient(day, end, tz)
    previous_end: datetime | None = None
    for minute in range(start, end - step + 1, step):
        maybe_start = wall_to_utc(day, minute, tz)
        if maybe_start is None:
            continue
        starts_at = maybe_start
        ends_at = starts_at + length
        if ends_at > end_utc or (previous_end is not None and starts_at < previous_end):
            continue
        previous_end = ends_at
        yield Interval(starts_at, ends_at)


def extra_slots(extra: Interval, slot_minutes: int) -> Iterator[Interval]:
    """Slots of one-off extra hours (already a UTC interval)."""
    length = timedelta(minutes=slot_minutes)
    starts_at = extra.starts_at
    while starts_at + length <= extra.ends_at:
        yield Interval(starts_at, starts_at + length)
        starts_at += length


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


def local_dates(start: datetime, end: datetime, tz: ZoneInfo) -> Iterator[date]:
    """Every local date that the UTC window [start, end) touches."""
    day = start.astimezone(tz).date()
    last = end.astimezone(tz).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def free_slots(
    rules: Sequence[WeeklyRule],
    extras: Sequence[tuple[Interval, int]],
    blocked: Sequence[Interval],
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    *,
    starts_before: datetime | None = None,
    previous_end: datetime | None = None,
) -> Iterator[Interval]:
    """A specialist's free slots within [start, end), earliest first, lazily.

    `blocked` holds leave and active appointments. Slots from different sources
    (rules, extra hours) that would overlap are offered once: the earlier wins.
    A search done in pieces passes `starts_before` (the piece's end) and the
    previous piece's last `previous_end`.
    """
    starts_before = starts_before or end
    by_weekday: dict[int, list[WeeklyRule]] = {}
    for rule in rules:
        by_weekday.setdefault(rule.weekday, []).append(rule)
    blocks = _Blocks(blocked)
    # From the day before: extra hours that began then may run into the window.
    for day in local_dates(start - timedelta(days=1), starts_before, tz):
        # Merged lazily: a search that needs one slot of this day generates about one.
        sources: list[Iterator[Interval]] = [
            rule_slots(rule, day, tz, start) for rule in by_weekday.get(day.weekday(), ())
        ]
        sources += [
            extra_slots(extra, minutes)
            for extra, minutes in extras
            if extra.starts_at.astimezone(tz).date() == day
        ]
        todays: Iterator[Interval] = heapq.merge(*sources, key=_start)
        for slot in todays:
            if slot.starts_at < start or slot.starts_at >= starts_before or slot.ends_at > end:
                continue
            if previous_end is not None and slot.starts_at < previous_end:
                continue
            if blocks.hits(slot):
                continue
            previous_end = slot.ends_at
            yield slot


def _start(slot: Interval) -> datetime:
    return slot.starts_at


class _Blocks:
    """Leave and bookings, searchable by bisection (a slot checks only nearby blocks)."""

    def __init__(self, blocked: Iterable[Interval]) -> None:
        self.items = sorted(blocked, key=lambda b: b.starts_at)
        self.starts = [b.starts_at for b in self.items]
        self.longest = max((b.ends_at - b.starts_at for b in self.items), default=timedelta(0))

    def hits(self, slot: Interval) -> bool:
        low = bisect_left(self.starts, slot.starts_at - self.longest)
        high = bisect_left(self.starts, slot.ends_at)
        return any(self.items[i].ends_at > slot.starts_at for i in range(low, high))


def rules_overlap(a: WeeklyRule, b: WeeklyRule) -> bool:
    """Same weekday, overlapping hours and overlapping validity."""
    if a.weekday != b.weekday:
        return False
    if not (
        minutes_of(a.start) < minutes_of(b.end, is_end=True)
        and minutes_of(b.start) < minutes_of(a.end, is_end=True)
    ):
        return False
    a_to = a.valid_to or date.max
    b_to = b.valid_to or date.max
    return a.valid_from <= b_to and b.valid_from <= a_to
