"""Plausible consult history, for the demo (twelve weeks) and the benchmark (100,000).

Rows go straight into `consultrequest` with one bulk insert: they are finished cases of
the past, so they carry no thread, report text or audit trail, only what the equity
view reads (times, urgency, mode, outcome). The model: a lognormal time to the first
response whose median depends on the requesting region (remote islands wait longer),
on urgency and on a slow improvement over the weeks; an escalation when that passes
the urgency's target; a report some hours later; two thirds resolved without referral.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session

from server.consults.models import (
    ConsultMode,
    ConsultRequest,
    ConsultStatus,
    Outcome,
    Sex,
    Urgency,
)

# Median hours to the first specialist response for a routine consult, by region code;
# unknown regions get DEFAULT_MEDIAN_HOURS.
REGION_MEDIAN_HOURS = {"seoul": 9.0, "gangwon": 17.0, "jeonnam": 28.0}
DEFAULT_MEDIAN_HOURS = 20.0
# Share of written (asynchronous) consults: weak island links favour writing.
REGION_ASYNC_SHARE = {"seoul": 0.35, "gangwon": 0.5, "jeonnam": 0.65}
URGENCY_WEIGHTS = ((Urgency.ROUTINE, 0.62), (Urgency.SOON, 0.30), (Urgency.URGENT, 0.08))
URGENCY_FACTOR = {Urgency.ROUTINE: 1.0, Urgency.SOON: 0.45, Urgency.URGENT: 0.04}
TARGET_HOURS = {Urgency.ROUTINE: 72.0, Urgency.SOON: 24.0, Urgency.URGENT: 0.5}
DECLINE_RATE = 0.05
HISTORY_QUESTION = "(기록 자료 · history)"


@dataclass(frozen=True)
class Requester:
    """A clinic that sends consults: its organisation, a GP of it and its region's code."""

    organisation_id: int
    user_id: int
    region_code: str


@dataclass(frozen=True)
class Answerer:
    """A specialist who answers: user, hospital and specialty."""

    user_id: int
    organisation_id: int
    specialty_id: int


def _lognormal_hours(rng: random.Random, median: float, sigma: float = 0.8) -> float:
    return float(rng.lognormvariate(math.log(max(median, 0.01)), sigma))


def _pick_urgency(rng: random.Random) -> Urgency:
    roll = rng.random()
    for urgency, weight in URGENCY_WEIGHTS:
        if roll < weight:
            return urgency
        roll -= weight
    return Urgency.ROUTINE


def history_rows(
    rng: random.Random,
    *,
    requesters: Sequence[Requester],
    answerers: Sequence[Answerer],
    start: datetime,
    weeks: int,
    per_week: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """`weeks * per_week` finished consults from `start` on (those not finished by `now`
    are left out: a history holds no open case)."""
    by_specialty: dict[int, list[Answerer]] = {}
    for answerer in answerers:
        by_specialty.setdefault(answerer.specialty_id, []).append(answerer)
    specialties = sorted(by_specialty)
    rows: list[dict[str, Any]] = []
    for week in range(weeks):
        # Services get better as the network settles in: 15 % slower at first, 15 % faster.
        trend = 1.15 - 0.3 * (week / max(weeks - 1, 1))
        for _ in range(per_week):
            requester = rng.choice(requesters)
            specialty_id = rng.choice(specialties)
            answerer = rng.choice(by_specialty[specialty_id])
            urgency = _pick_urgency(rng)
            region_median = REGION_MEDIAN_HOURS.get(requester.region_code, DEFAULT_MEDIAN_HOURS)
            requested = start + timedelta(weeks=week, seconds=rng.uniform(0, 7 * 86400))
            mode = (
                ConsultMode.ASYNC
                if rng.random() < REGION_ASYNC_SHARE.get(requester.region_code, 0.5)
                else ConsultMode.VIDEO
            )
            response_h = _lognormal_hours(rng, region_median * URGENCY_FACTOR[urgency] * trend)
            first_response = requested + timedelta(hours=response_h)
            escalated = (
                requested + timedelta(hours=TARGET_HOURS[urgency])
                if response_h > TARGET_HOURS[urgency]
                else None
            )
            row: dict[str, Any] = {
                "public_id": secrets.token_urlsafe(16),
                "organisation_id": requester.organisation_id,
                "requester_id": requester.user_id,
                "specialty_id": specialty_id,
                "urgency": urgency.value,
                "mode": mode.value,
                "patient_chart_number": f"H-{rng.randrange(10**6):06d}",
                "patient_age": rng.randrange(1, 95),
                "patient_sex": rng.choice((Sex.FEMALE, Sex.MALE)).value,
                "clinical_question": HISTORY_QUESTION,
                "history": "",
                "medication": "",
                "vital_signs": "",
                "outcome_note": "",
                "created_at": requested - timedelta(minutes=rng.uniform(2, 30)),
                "requested_at": requested,
                "first_response_at": first_response,
                "escalated_at": escalated,
                "report_signed_at": None,
                "completed_at": None,
                "outcome": None,
                "usefulness": None,
                "assigned_specialist_id": None,
                "assigned_organisation_id": None,
            }
            if rng.random() < DECLINE_RATE:
                if first_response > now:
                    continue
                row["status"] = ConsultStatus.DECLINED.value
                rows.append(row)
                continue
            # A call waits for its slot; writing is answered within the day.
            report_median = 8.0 if mode == ConsultMode.ASYNC else 30.0
            signed = first_response + timedelta(hours=_lognormal_hours(rng, report_median, 0.6))
            completed = signed + timedelta(hours=_lognormal_hours(rng, 10.0, 0.7))
            if completed > now:
                continue
            resolved_share = 0.70 if requester.region_code == "seoul" else 0.64
            roll = rng.random()
            outcome = (
                Outcome.RESOLVED_WITHOUT_REFERRAL
                if roll < resolved_share
                else Outcome.REFERRED
                if roll < 0.96
                else Outcome.OTHER
            )
            row.update(
                status=ConsultStatus.COMPLETED.value,
                assigned_specialist_id=answerer.user_id,
                assigned_organisation_id=answerer.organisation_id,
                report_signed_at=signed,
                completed_at=completed,
                outcome=outcome.value,
                usefulness=rng.choice((3, 4, 4, 5, 5)),
            )
            rows.append(row)
    return rows


def insert_rows(session: Session, rows: Sequence[dict[str, Any]], batch: int = 5000) -> int:
    """Bulk insert (the column types still convert times to naive UTC)."""
    table = ConsultRequest.__table__  # type: ignore[attr-defined]
    for offset in range(0, len(rows), batch):
        session.execute(insert(table), list(rows[offset : offset + batch]))
    return len(rows)
