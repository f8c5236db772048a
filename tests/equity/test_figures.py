"""The dashboard's numbers against the hand-computed fixture (tests/equity/fixtures.py).

Nearest-rank percentiles: the p-th of n sorted values is the one at rank ceil(p·n).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session

from server.consults.models import ConsultStatus, Outcome, Urgency
from server.db import engine_for
from server.equity import facts, service
from server.equity.service import Cell, Dimension, Filters
from tests.equity.fixtures import START, World, make_world


@pytest.fixture
def world(db: Session) -> World:
    return make_world(db)


def _figures(db: Session, **filters: object) -> service.Figures:
    """As a page computes them: refresh and aggregate in one transaction of the app's engine
    (the test's own session commits every statement: no savepoint there)."""
    url = db.get_bind().engine.url.render_as_string(hide_password=False)
    with Session(engine_for(url)) as session:
        facts.refresh(session)
        figures = service.figures(session, Filters(start=START, weeks=2, **filters))  # type: ignore[arg-type]
        session.commit()
    return figures


def _by(figures: service.Figures, dimension: Dimension, key: object) -> Cell:
    return next(cell for cell in figures.by[dimension] if cell.key == str(key))


def test_nearest_rank() -> None:
    assert service.nearest_rank([], 0.5) is None
    assert service.nearest_rank([7], 0.9) == 7
    assert service.nearest_rank([1, 2, 3, 10], 0.5) == 2
    assert service.nearest_rank([1, 2, 3, 10], 0.9) == 10
    assert service.nearest_rank(list(range(1, 11)), 0.9) == 9
    assert service.nearest_rank(list(range(1, 11)), 0.5) == 5


@given(st.lists(st.lists(st.integers(0, 10**6), min_size=1, max_size=30), min_size=1, max_size=20))
def test_selection_across_cells_is_nearest_rank(runs: list[list[int]]) -> None:
    runs = [sorted(run) for run in runs]
    merged = sorted(value for run in runs for value in run)
    for p in (0.5, 0.9):
        rank = -(-int(p * 100) * len(merged) // 100)
        assert service.kth_smallest(runs, rank) == service.nearest_rank(merged, p)


def test_overall_figures(db: Session, world: World) -> None:
    figures = _figures(db, specialty_id=world.specialty.id)
    overall = figures.overall
    # Sent in the period: A1 A2 A3 A4 B1 B2 (B3 is in week 3, the draft never sent).
    assert overall.n == 6
    # Responses 1 2 3 10 30 h: median rank 3 → 3 h, p90 rank 5 → 30 h.
    assert overall.responded == 5
    assert overall.response_median_h == pytest.approx(3.0)
    assert overall.response_p90_h == pytest.approx(30.0)
    # Signed reports 5 20 40 h: median rank 2 → 20 h, p90 rank 3 → 40 h.
    assert overall.reported == 3
    assert overall.report_median_h == pytest.approx(20.0)
    assert overall.report_p90_h == pytest.approx(40.0)
    # Outcomes: A1 and B1 resolved, A2 referred.
    assert (overall.with_outcome, overall.resolved) == (3, 2)
    assert overall.resolved_share == pytest.approx(2 / 3)
    assert overall.written == 4 and overall.written_share == pytest.approx(4 / 6)
    assert (overall.declined, overall.escalated) == (1, 1)


def test_breakdowns(db: Session, world: World) -> None:
    figures = _figures(db, specialty_id=world.specialty.id)
    a = _by(figures, Dimension.REGION, world.region_a.id)
    assert (a.n, a.response_median_h, a.response_p90_h) == (4, 2.0, 10.0)
    assert (a.report_median_h, a.report_p90_h) == (5.0, 20.0)
    assert (a.resolved_share, a.written_share, a.declined, a.escalated) == (0.5, 0.75, 1, 1)
    b = _by(figures, Dimension.REGION, world.region_b.id)
    assert (b.n, b.responded, b.response_median_h, b.response_p90_h) == (2, 1, 30.0, 30.0)
    assert (b.resolved_share, b.written_share) == (1.0, 0.5)
    weeks = figures.by[Dimension.WEEK]
    assert [cell.key for cell in weeks] == ["0", "1"]
    assert (weeks[0].n, weeks[0].response_median_h, weeks[0].response_p90_h) == (3, 2.0, 3.0)
    assert (weeks[1].n, weeks[1].response_median_h, weeks[1].response_p90_h) == (3, 10.0, 30.0)
    routine = _by(figures, Dimension.URGENCY, Urgency.ROUTINE.value)
    assert (routine.n, routine.response_median_h, routine.response_p90_h) == (4, 2.0, 30.0)
    assert _by(figures, Dimension.URGENCY, Urgency.URGENT.value).response_median_h == 10.0
    assert [c.key for c in figures.by[Dimension.SPECIALTY]] == [str(world.specialty.id)]
    # Region A by week: A1 A2 A3 (1 2 3 h), then A4 (10 h).
    a_weeks = figures.region_weeks[str(world.region_a.id)]
    assert [(c.n, c.response_median_h) for c in a_weeks] == [(3, 2.0), (1, 10.0)]


def test_filters_and_empty_weeks(db: Session, world: World) -> None:
    only_a = _figures(db, specialty_id=world.specialty.id, region_id=world.region_a.id)
    assert only_a.overall.n == 4
    assert [c.key for c in only_a.by[Dimension.REGION]] == [str(world.region_a.id)]
    urgent = _figures(db, specialty_id=world.specialty.id, urgency=Urgency.URGENT)
    assert urgent.overall.n == 1
    assert [c.n for c in urgent.by[Dimension.WEEK]] == [0, 1]  # the empty week is shown


def test_facts_follow_an_open_consult(db: Session, world: World) -> None:
    from server.consults.models import ConsultRequest

    _figures(db, specialty_id=world.specialty.id)
    b2 = db.get(ConsultRequest, world.consults["B2"].id)
    assert b2 is not None and b2.requested_at is not None
    from datetime import timedelta

    b2.first_response_at = b2.requested_at + timedelta(hours=4)
    b2.status = ConsultStatus.COMPLETED
    b2.outcome = Outcome.REFERRED
    db.add(b2)
    db.commit()
    figures = _figures(db, specialty_id=world.specialty.id)
    b = _by(figures, Dimension.REGION, world.region_b.id)
    assert (b.responded, b.response_median_h, b.with_outcome) == (2, 4.0, 2)
