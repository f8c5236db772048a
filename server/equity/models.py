"""One row of figures per consult, kept for the equity view (no clinical content).

The dashboard reads these instead of the consults: times become integer seconds once,
when a consult is first seen or while it is still open, so grouping 100,000 consults
costs a scan of small integers, not 300,000 timestamp parses (SQLite stores text).
A closed consult's row is final and never recomputed (see facts.refresh).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

# Monday 1970-01-05 00:00 UTC, in epoch seconds: weeks are counted from it.
FIRST_MONDAY_S = 4 * 86400
WEEK_SECONDS = 7 * 86400

# Bits of EquityFact.flags.
RESOLVED = 1  # outcome: resolved without referral
HAS_OUTCOME = 2  # closed with an outcome
WRITTEN = 4  # mode: async (written)
DECLINED = 8
ESCALATED = 16


class EquityFact(SQLModel, table=True):
    __tablename__ = "equityfact"
    __table_args__ = (
        # Covering, in the dashboard's GROUP BY order: a period's scan reads the index
        # alone and meets each cell's rows together (no sort), SQLite and PostgreSQL.
        Index(
            "ix_equityfact_scan",
            "week",
            "region_id",
            "specialty_id",
            "urgency",
            "response_s",
            "report_s",
            "flags",
        ),
        Index("ix_equityfact_final", "final"),
    )

    consult_id: int = Field(primary_key=True, foreign_key="consultrequest.id")
    # Seconds since the epoch (UTC) the request was sent; None while a draft.
    requested_s: int | None = Field(default=None, sa_type=BigInteger)
    # The week of the request: whole weeks since Monday 1970-01-05 00:00 UTC; None as above.
    week: int | None = None
    region_id: int
    specialty_id: int
    urgency: str = Field(max_length=10)
    response_s: int | None = None  # to the first specialist response
    report_s: int | None = None  # to the first signed report
    flags: int = 0
    # Closed: nothing the view reads can change any more.
    final: bool = False
