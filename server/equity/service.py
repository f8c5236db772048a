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

The database does the selecting (an index-only range scan of `equityfact`, filtered by
region, specialty and urgency); one pass here groups the rows by their finest cell
(region × specialty × urgency × week) and the breakdowns are rolled up from those cells.
SQLite has no percentile aggregate, and ten window-function sorts cost more than this
one pass (bench/equity.py). Only aggregates leave this module: no consult, no patient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlmodel import Session, col

from server.consults.models import Urgency
from server.equity import models as m
from server.equity.models import EquityFact

WEEK_SECONDS = 7 * 86400
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


def _rollup(key: str, parts: Iterable[_Acc]) -> Cell:
    cell = Cell(key)
    responses: list[int] = []
    reports: list[int] = []
    for part in parts:
        cell.n += part.n
        cell.with_outcome += part.with_outcome
        cell.resolved += part.resolved
        cell.written += part.written
        cell.declined += part.declined
        cell.escalated += part.escalated
        responses.extend(part.responses)
        reports.extend(part.reports)
    responses.sort()
    reports.sort()
    cell.responded, cell.reported = len(responses), len(reports)
    cell.response_median_h = _hours(nearest_rank(responses, 0.5))
    cell.response_p90_h = _hours(nearest_rank(responses, 0.9))
    cell.report_median_h = _hours(nearest_rank(reports, 0.5))
    cell.report_p90_h = _hours(nearest_rank(reports, 0.9))
    return cell


def figures(session: Session, filters: Filters) -> Figures:
    """Every figure of the dashboard for these filters (facts must be fresh: facts.refresh)."""
    f = EquityFact
    start = int(filters.start_at.timestamp())
    query = select(
        col(f.region_id),
        col(f.specialty_id),
        col(f.urgency),
        col(f.requested_s),
        col(f.response_s),
        col(f.report_s),
        col(f.flags),
    ).where(
        col(f.requested_s) >= start,
        col(f.requested_s) < int(filters.end_at.timestamp()),
    )
    if filters.region_id is not None:
        query = query.where(col(f.region_id) == filters.region_id)
    if filters.specialty_id is not None:
        query = query.where(col(f.specialty_id) == filters.specialty_id)
    if filters.urgency is not None:
        query = query.where(col(f.urgency) == filters.urgency.value)
    cells: dict[tuple[int, int, str, int], _Acc] = {}
    for region, specialty, urgency, requested, response, report, flags in session.execute(query):
        key = (region, specialty, urgency, (requested - start) // WEEK_SECONDS)
        acc = cells.get(key)
        if acc is None:
            acc = cells[key] = _Acc()
        acc.n += 1
        if flags:
            acc.with_outcome += (flags & m.HAS_OUTCOME) >> 1
            acc.resolved += flags & m.RESOLVED
            acc.written += (flags & m.WRITTEN) >> 2
            acc.declined += (flags & m.DECLINED) >> 3
            acc.escalated += (flags & m.ESCALATED) >> 4
        if response is not None:
            acc.responses.append(response)
        if report is not None:
            acc.reports.append(report)
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
            _rollup(str(w), pairs.get((region, str(w)), [])) for w in range(filters.weeks)
        ]
    return result


def week_start_of(filters: Filters, key: str) -> date:
    return filters.start + timedelta(weeks=int(key))
