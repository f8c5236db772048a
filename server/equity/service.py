"""The equity figures: counts, shares, medians and p90s by region, specialty, urgency, week.

Definitions (docs/equity.md):
- a consult counts in the week its request was sent (`requested_at`, weeks from Monday
  00:00 UTC), in its requesting organisation's region;
- time to first response = first_response_at - requested_at; time to signed report =
  report_signed_at - requested_at (first signature); each over the consults that have it;
- percentiles are nearest-rank: the p-th is the value at rank ceil(p·n) in ascending
  order (the median of 4 values is the 2nd);
- resolved without referral = outcome "resolved without referral" among consults closed
  with an outcome; written = mode "async"; declined = status "declined";
  escalated = escalated_at set.

The database does the work per consult: one index-only range scan of `equityfact`
(filtered by region, specialty and urgency) grouped by the finest cell (region ×
specialty × urgency × week), with the counts summed and each cell's durations joined
into one string. Here each breakdown is rolled up from those cells and its medians and
p90s taken from the sorted durations: SQLite has no percentile aggregate, ten
window-function sorts cost several times more, and a row per consult through Python
costs more still (bench/equity.py). Only aggregates leave this module.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import repeat

from sqlalchemy import text
from sqlmodel import Session

from server.consults.models import Urgency
from server.equity import models as m

MAX_WEEKS = 52
DEFAULT_WEEKS = 12


class Dimension(StrEnum):
    REGION = "region"
    SPECIALTY = "specialty"
    URGENCY = "urgency"
    WEEK = "week"


@dataclass(frozen=True)
class Filters:
    """Which consults: `weeks` weeks from `start` (a Monday), optionally one region etc."""

    start: date
    weeks: int = DEFAULT_WEEKS
    region_id: int | None = None
    specialty_id: int | None = None
    urgency: Urgency | None = None

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(0), UTC)

    @property
    def end_at(self) -> datetime:
        return self.start_at + timedelta(weeks=self.weeks)


def week_number(monday: date) -> int:
    """The absolute week number of `equityfact.week` for the week starting `monday`."""
    seconds = int(datetime.combine(monday, time(0), UTC).timestamp())
    return (seconds - m.FIRST_MONDAY_S) // m.WEEK_SECONDS


def default_start(today: date, weeks: int = DEFAULT_WEEKS) -> date:
    """The Monday `weeks - 1` weeks before this week's: the last weeks and this one."""
    monday = today - timedelta(days=today.weekday())
    return monday - timedelta(weeks=weeks - 1)


def nearest_rank(ordered: list[int], p: float) -> int | None:
    """The p-th percentile of an ascending list, nearest-rank (rank ceil(p·n))."""
    if not ordered:
        return None
    n = len(ordered)
    rank = -(-int(p * 100) * n // 100)  # ceil(p·n) in integers: no float surprises
    return ordered[max(rank, 1) - 1]


@dataclass
class Cell:
    """The figures of one group of consults (a region, a specialty, an urgency, a week)."""

    key: str
    n: int = 0
    responded: int = 0
    reported: int = 0
    with_outcome: int = 0
    resolved: int = 0
    written: int = 0
    declined: int = 0
    escalated: int = 0
    response_median_h: float | None = None
    response_p90_h: float | None = None
    report_median_h: float | None = None
    report_p90_h: float | None = None

    @property
    def resolved_share(self) -> float | None:
        return self.resolved / self.with_outcome if self.with_outcome else None

    @property
    def written_share(self) -> float | None:
        return self.written / self.n if self.n else None

    @property
    def declined_share(self) -> float | None:
        return self.declined / self.n if self.n else None

    @property
    def escalated_share(self) -> float | None:
        return self.escalated / self.n if self.n else None


@dataclass
class _Acc:
    """Counts and raw durations of one finest cell, before roll-up."""

    n: int = 0
    with_outcome: int = 0
    resolved: int = 0
    written: int = 0
    declined: int = 0
    escalated: int = 0
    responses: list[int] = field(default_factory=list)
    reports: list[int] = field(default_factory=list)


@dataclass
class Figures:
    filters: Filters
    overall: Cell
    by: dict[Dimension, list[Cell]] = field(default_factory=dict)
    # Region → one cell per week of the period: is a region catching up, or falling behind?
    region_weeks: dict[str, list[Cell]] = field(default_factory=dict)


def _hours(seconds: int | None) -> float | None:
    return None if seconds is None else seconds / 3600.0


def _rank(p: float, n: int) -> int:
    return max(-(-int(p * 100) * n // 100), 1)


def kth_smallest(runs: Sequence[list[int]], k: int) -> int:
    """The k-th smallest value (1-based) of several sorted lists, without merging them:
    a binary search on the value, counting with bisect in each list (C loops)."""
    low = min(run[0] for run in runs)
    high = max(run[-1] for run in runs)
    # A narrower start: each run's value at the same share of its length brackets the
    # answer in practice; checked by two counts, and dropped when it does not.
    share = k / sum(map(len, runs))
    marks = [run[min(len(run) - 1, int(share * len(run)))] for run in runs]
    below, above = min(marks) - 1, max(marks)
    if (
        below >= low
        and sum(map(bisect_right, runs, repeat(below, len(runs)))) < k
        and sum(map(bisect_right, runs, repeat(above, len(runs)))) >= k
    ):
        low, high = below + 1, above
    while low < high:
        middle = (low + high) // 2
        if sum(map(bisect_right, runs, repeat(middle, len(runs)))) >= k:
            high = middle
        else:
            low = middle + 1
    return low


def _percentiles(runs: list[list[int]]) -> tuple[int, float | None, float | None]:
    """(count, nearest-rank median in hours, p90 in hours) of the sorted runs together."""
    runs = [run for run in runs if run]
    n = sum(map(len, runs))
    if n == 0:
        return 0, None, None
    return (
        n,
        kth_smallest(runs, _rank(0.5, n)) / 3600.0,
        kth_smallest(runs, _rank(0.9, n)) / 3600.0,
    )


def _rollup(key: str, parts: Iterable[_Acc], *, full: bool = True) -> Cell:
    """One group's figures from its cells (`full=False`: counts and the response median
    only, for the region-by-week chart)."""
    cell = Cell(key)
    responses: list[list[int]] = []
    reports: list[list[int]] = []
    for part in parts:
        cell.n += part.n
        cell.with_outcome += part.with_outcome
        cell.resolved += part.resolved
        cell.written += part.written
        cell.declined += part.declined
        cell.escalated += part.escalated
        responses.append(part.responses)
        reports.append(part.reports)
    if not full:
        runs = [run for run in responses if run]
        cell.responded = sum(map(len, runs))
        if runs:
            cell.response_median_h = kth_smallest(runs, _rank(0.5, cell.responded)) / 3600.0
        return cell
    cell.responded, cell.response_median_h, cell.response_p90_h = _percentiles(responses)
    cell.reported, cell.report_median_h, cell.report_p90_h = _percentiles(reports)
    return cell


def _cells_query(dialect: str, filters: Filters) -> tuple[str, dict[str, object]]:
    """One GROUP BY over the finest cell: counts in SQL, durations as comma lists."""
    if dialect == "postgresql":
        joined = "string_agg(CAST({0} AS TEXT), ',')"
    else:
        joined = "group_concat({0})"
    first = week_number(filters.start)
    where = ["week >= :first", "week < :last"]
    params: dict[str, object] = {"first": first, "last": first + filters.weeks}
    if filters.region_id is not None:
        where.append("region_id = :region")
        params["region"] = filters.region_id
    if filters.specialty_id is not None:
        where.append("specialty_id = :specialty")
        params["specialty"] = filters.specialty_id
    if filters.urgency is not None:
        where.append("urgency = :urgency")
        params["urgency"] = filters.urgency.value
    sql = f"""
        SELECT week, region_id, specialty_id, urgency,
               count(*),
               sum((flags & {m.HAS_OUTCOME}) / {m.HAS_OUTCOME}),
               sum(flags & {m.RESOLVED}),
               sum((flags & {m.WRITTEN}) / {m.WRITTEN}),
               sum((flags & {m.DECLINED}) / {m.DECLINED}),
               sum((flags & {m.ESCALATED}) / {m.ESCALATED}),
               {joined.format("response_s")},
               {joined.format("report_s")}
        FROM equityfact
        WHERE {" AND ".join(where)}
        GROUP BY week, region_id, specialty_id, urgency
    """
    return sql, params


def _ints(joined: str | None) -> list[int]:
    """A cell's durations, sorted (the roll-ups select ranks across sorted runs)."""
    return sorted(map(int, joined.split(","))) if joined else []


def figures(session: Session, filters: Filters) -> Figures:
    """Every figure of the dashboard for these filters (facts must be fresh: facts.refresh)."""
    sql, params = _cells_query(session.get_bind().dialect.name, filters)
    first = week_number(filters.start)
    cells: dict[tuple[int, int, str, int], _Acc] = {}
    for row in session.execute(text(sql), params):
        week, region, specialty, urgency, n, outcome, resolved, written, declined, escalated = row[
            :10
        ]
        cells[(int(region), int(specialty), str(urgency), int(week) - first)] = _Acc(
            n=int(n),
            with_outcome=int(outcome),
            resolved=int(resolved),
            written=int(written),
            declined=int(declined),
            escalated=int(escalated),
            responses=_ints(row[10]),
            reports=_ints(row[11]),
        )
    result = Figures(filters, _rollup("all", cells.values()))
    for index, dimension in enumerate(Dimension):
        groups: dict[str, list[_Acc]] = {}
        for key, acc in cells.items():
            groups.setdefault(str(key[index]), []).append(acc)
        result.by[dimension] = [_rollup(k, parts) for k, parts in sorted(groups.items())]
    weeks = {cell.key: cell for cell in result.by[Dimension.WEEK]}
    result.by[Dimension.WEEK] = [weeks.get(str(w), Cell(str(w))) for w in range(filters.weeks)]
    pairs: dict[tuple[str, str], list[_Acc]] = {}
    for key, acc in cells.items():
        pairs.setdefault((str(key[0]), str(key[3])), []).append(acc)
    for region in (cell.key for cell in result.by[Dimension.REGION]):
        result.region_weeks[region] = [
            _rollup(str(w), pairs.get((region, str(w)), []), full=False)
            for w in range(filters.weeks)
        ]
    return result


def week_start_of(filters: Filters, key: str) -> date:
    return filters.start + timedelta(weeks=int(key))
