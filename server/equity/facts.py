"""Keeping `equityfact` in step with the consults: new ones, and the still-open ones."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from server.accounts.models import Organisation
from server.consults import lifecycle
from server.consults.models import ConsultMode, ConsultRequest, ConsultStatus, Outcome
from server.equity import models as m
from server.equity.models import EquityFact

BATCH = 5000


def _seconds(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def fact_of(consult: Any, region_id: int) -> dict[str, Any]:
    """The figures of one consult (a ConsultRequest or a row with the same fields)."""
    requested = _seconds(consult.requested_at)
    response = _seconds(consult.first_response_at)
    report = _seconds(consult.report_signed_at)
    flags = 0
    if consult.outcome is not None:
        flags |= m.HAS_OUTCOME
        if consult.outcome == Outcome.RESOLVED_WITHOUT_REFERRAL:
            flags |= m.RESOLVED
    if consult.mode == ConsultMode.ASYNC:
        flags |= m.WRITTEN
    if consult.status == ConsultStatus.DECLINED:
        flags |= m.DECLINED
    if consult.escalated_at is not None:
        flags |= m.ESCALATED
    return {
        "consult_id": consult.id,
        "requested_s": requested,
        "week": (requested - m.FIRST_MONDAY_S) // m.WEEK_SECONDS if requested is not None else None,
        "region_id": region_id,
        "specialty_id": consult.specialty_id,
        "urgency": str(consult.urgency),
        "response_s": response - requested if response is not None and requested else None,
        "report_s": report - requested if report is not None and requested else None,
        "flags": flags,
        "final": consult.status in lifecycle.CLOSED,
    }


def refresh(session: Session) -> int:
    """Add the consults not yet seen and recompute the open ones; returns how many.

    Cheap when little changed: the open consults are few, the new ones are those with
    a higher id. Two processes refreshing at once both compute the same rows; the
    loser's insert fails on the primary key and is simply dropped (a savepoint).
    """
    last = session.execute(select(func.max(col(EquityFact.consult_id)))).scalar() or 0
    open_ids = select(col(EquityFact.consult_id)).where(col(EquityFact.final).is_(False))
    c = ConsultRequest
    # Only the columns the figures need: never the clinical text.
    base = select(
        col(c.id),
        col(c.requested_at),
        col(c.first_response_at),
        col(c.report_signed_at),
        col(c.escalated_at),
        col(c.outcome),
        col(c.mode),
        col(c.status),
        col(c.urgency),
        col(c.specialty_id),
        col(Organisation.region_id),
    ).join(Organisation, col(Organisation.id) == col(c.organisation_id))
    done = 0
    # The open ones (few), then the new ones in id order, a batch at a time (the first
    # refresh of a large deployment never holds every row in memory).
    rows = session.execute(base.where(col(c.id).in_(open_ids), col(c.id) <= last)).all()
    if rows:
        done += _store(session, [fact_of(row, row.region_id) for row in rows])
    after = last
    while True:
        rows = session.execute(base.where(col(c.id) > after).order_by(col(c.id)).limit(BATCH)).all()
        if not rows:
            return done
        done += _store(session, [fact_of(row, row.region_id) for row in rows])
        after = rows[-1].id


def _store(session: Session, rows: list[dict[str, Any]]) -> int:
    ids = [row["consult_id"] for row in rows]
    try:
        with session.begin_nested():
            session.execute(delete(EquityFact).where(col(EquityFact.consult_id).in_(ids)))
            session.execute(insert(EquityFact), rows)
    except IntegrityError:
        return 0  # another process stored them first
    return len(rows)
