"""Generated slots never overlap, never fall on leave, never leave their rule, across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from server.scheduling import slots as grid

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Seoul"]
# Windows that contain a DST change in the two zones that have one.
DST_DAYS = [date(2027, 3, 28), date(2027, 10, 31), date(2027, 3, 14), date(2027, 11, 7)]


@st.composite
def weekly_rules(draw: st.DrawFn) -> list[grid.WeeklyRule]:
    rules: list[grid.WeeklyRule] = []
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(0, 23 * 60)) // 5 * 5
        end = draw(st.integers(start + 5, 24 * 60)) // 5 * 5
        if end <= start:
            continue
        slot = draw(st.sampled_from([5, 10, 15, 20, 25, 30, 45, 60]))
        rule = grid.WeeklyRule(
            weekday=draw(st.integers(0, 6)),
            start=time(start // 60, start % 60),
            end=time(0, 0) if end == 24 * 60 else time(end // 60, end % 60),
            slot_minutes=slot,
            valid_from=date(2027, 1, 1) + timedelta(days=draw(st.integers(0, 90))),
            valid_to=None
            if draw(st.booleans())
            else date(2027, 3, 20) + timedelta(days=draw(st.integers(0, 300))),
        )
        if any(grid.rules_overlap(rule, other) for other in rules):
            continue  # the service refuses overlapping rules
        rules.append(rule)
    return rules


@st.composite
def leaves(draw: st.DrawFn, around: datetime) -> list[grid.Interval]:
    result = []
    for _ in range(draw(st.integers(0, 4))):
        start = around + timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440)))
        result.append(grid.Interval(start, start + timedelta(minutes=draw(st.integers(1, 2000)))))
    return result


@settings(max_examples=150, deadline=None)
@given(
    rules=weekly_rules(),
    zone_name=st.sampled_from(ZONES),
    dst_day=st.sampled_from(DST_DAYS),
    data=st.data(),
)
def test_slots_respect_rules_leave_and_each_other(
    rules: list[grid.WeeklyRule], zone_name: str, dst_day: date, data: st.DataObject
) -> None:
    tz = ZoneInfo(zone_name)
    centre = datetime.combine(dst_day, time(12, 0), tzinfo=UTC)
    start = centre - timedelta(days=4)
    end = centre + timedelta(days=4)
    leave = data.draw(leaves(centre))
    found = list(grid.free_slots(rules, [], leave, tz, start, end))
    for a, b in zip(found, found[1:], strict=False):
        assert a.ends_at <= b.starts_at, "slots overlap or are out of order"
    for slot in found:
        assert start <= slot.starts_at and slot.ends_at <= end
        assert not any(
            grid.overlaps(slot.starts_at, slot.ends_at, x.starts_at, x.ends_at) for x in leave
        )
        assert _inside_some_rule(slot, rules, tz), f"{slot} outside every rule"
    assert found == _reference(rules, leave, tz, start, end), "a free slot was missed"


def _reference(
    rules: list[grid.WeeklyRule],
    leave: list[grid.Interval],
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[grid.Interval]:
    """Everything generated the slow way, then filtered: what free_slots must return."""
    every = sorted(
        (
            slot
            for day in grid.local_dates(start - timedelta(days=1), end, tz)
            for rule in rules
            for slot in grid.rule_slots(rule, day, tz)
        ),
        key=lambda s: s.starts_at,
    )
    kept: list[grid.Interval] = []
    for slot in every:
        if slot.starts_at < start or slot.ends_at > end:
            continue
        if kept and slot.starts_at < kept[-1].ends_at:
            continue
        if any(grid.overlaps(slot.starts_at, slot.ends_at, x.starts_at, x.ends_at) for x in leave):
            continue
        kept.append(slot)
    return kept


def _inside_some_rule(slot: grid.Interval, rules: list[grid.WeeklyRule], tz: ZoneInfo) -> bool:
    local = slot.starts_at.astimezone(tz)
    for rule in rules:
        if not grid.rule_applies(rule, local.date()):
            continue
        minutes = (slot.ends_at - slot.starts_at) / timedelta(minutes=1)
        rule_start = grid.wall_to_utc_lenient(local.date(), grid.minutes_of(rule.start), tz)
        rule_end = grid.wall_to_utc_lenient(
            local.date(), grid.minutes_of(rule.end, is_end=True), tz
        )
        on_grid = (
            grid.minutes_of(local.time()) - grid.minutes_of(rule.start)
        ) % rule.slot_minutes == 0
        if (
            minutes == rule.slot_minutes
            and rule_start <= slot.starts_at
            and slot.ends_at <= rule_end
            and on_grid
        ):
            return True
    return False


def test_spring_forward_skips_the_missing_hour() -> None:
    tz = ZoneInfo("Europe/Berlin")
    rule = grid.WeeklyRule(6, time(1, 0), time(4, 0), 30, date(2027, 1, 1), None)
    found = list(grid.rule_slots(rule, date(2027, 3, 28), tz))
    local_starts = [s.starts_at.astimezone(tz).strftime("%H:%M") for s in found]
    assert local_starts == ["01:00", "01:30", "03:00", "03:30"]
    assert all(s.ends_at - s.starts_at == timedelta(minutes=30) for s in found)


def test_fall_back_keeps_nine_oclock_at_nine_local() -> None:
    tz = ZoneInfo("America/New_York")
    rule = grid.WeeklyRule(0, time(9, 0), time(10, 0), 20, date(2027, 1, 1), None)
    before = list(grid.rule_slots(rule, date(2027, 11, 1), tz))  # still EDT (UTC-4)
    after = list(grid.rule_slots(rule, date(2027, 11, 8), tz))  # EST (UTC-5) since 7 Nov
    assert [s.starts_at.hour for s in before] == [13, 13, 13]
    assert [s.starts_at.hour for s in after] == [14, 14, 14]
    assert [s.starts_at.astimezone(tz).hour for s in before + after] == [9] * 6


def test_rule_starting_in_the_skipped_hour_begins_when_the_clocks_jump() -> None:
    """Found by hypothesis: 02:05-03:05 on the spring-forward night offers 03:00-03:05."""
    tz = ZoneInfo("Europe/Berlin")
    rule = grid.WeeklyRule(6, time(2, 5), time(3, 5), 5, date(2027, 1, 1), None)
    found = list(grid.rule_slots(rule, date(2027, 3, 28), tz))
    assert [s.starts_at for s in found] == [datetime(2027, 3, 28, 1, 0, tzinfo=UTC)]
    assert grid.wall_to_utc_lenient(date(2027, 3, 28), 125, tz) == datetime(
        2027, 3, 28, 1, 0, tzinfo=UTC
    )
