"""The equity dashboard over many consults, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.equity [--consults 100000] [--runs 20] [--backends sqlite,postgresql]

Seeds `--consults` finished consults (server.equity.history: 3 regions, 6 specialties,
12 weeks) and their figures (server.equity.facts.refresh, timed once), then times, in
the same run:
- the dashboard as a page asks for it: facts.refresh (nothing new) and
  service.figures (counts, shares, medians and p90s by region, specialty, urgency and
  week), p50 and p95;
- the baseline: one aggregate (`count(*)`, `sum(response_s)`) over the same period's
  rows of `equityfact`: a single scan, the least any figure over them must cost.
Target (issue 16): the dashboard's p50 at most 300 ms over 100,000 consults.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlmodel import Session, col

from server import migrate
from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.consults.models import ConsultRequest
from server.db import engine_for
from server.equity import facts, service
from server.equity.demo_history import week_start
from server.equity.history import Answerer, Requester, history_rows, insert_rows
from server.equity.models import EquityFact

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REGIONS = ("seoul", "gangwon", "jeonnam")
SPECIALTIES = ("cardiology", "dermatology", "endocrinology", "neurology", "pediatrics", "psych")


def seed(session: Session, consults: int, now: datetime) -> service.Filters:
    regions = [Region(code=code, name_ko=code, name_en=code) for code in REGIONS]
    specialties = [Specialty(code=code, name_ko=code, name_en=code) for code in SPECIALTIES]
    session.add_all([*regions, *specialties])
    session.flush()
    requesters, answerers = [], []
    for i, region in enumerate(regions * 10):
        clinic = Organisation(
            name_ko=f"c{i}", name_en=f"c{i}", kind=OrgKind.CLINIC, region_id=region.id or 0
        )
        session.add(clinic)
        session.flush()
        gp = User(
            email=f"gp{i}@bench.example",
            name="gp",
            password_hash="x",
            role=Role.GP,
            organisation_id=clinic.id or 0,
        )
        session.add(gp)
        session.flush()
        requesters.append(Requester(clinic.id or 0, gp.id or 0, region.code))
    hospital = Organisation(
        name_ko="h", name_en="h", kind=OrgKind.HOSPITAL, region_id=regions[0].id or 0
    )
    session.add(hospital)
    session.flush()
    for j, specialty in enumerate(specialties * 3):
        user = User(
            email=f"sp{j}@bench.example",
            name="sp",
            password_hash="x",
            role=Role.SPECIALIST,
            organisation_id=hospital.id or 0,
            specialty_id=specialty.id,
        )
        session.add(user)
        session.flush()
        answerers.append(Answerer(user.id or 0, hospital.id or 0, specialty.id or 0))
    weeks = 12
    start = week_start(now) - timedelta(weeks=weeks)
    rng = random.Random(16)
    inserted = 0
    while inserted < consults:
        rows = history_rows(
            rng,
            requesters=requesters,
            answerers=answerers,
            start=start,
            weeks=weeks,
            per_week=max(1, min(20_000, consults - inserted) // weeks + 1),
            now=now,
        )[: consults - inserted]
        inserted += insert_rows(session, rows)
    session.commit()
    return service.Filters(start=start.date(), weeks=weeks)


def timed(work: Callable[[], object], runs: int) -> list[float]:
    work()  # warm the caches and the statement cache
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]


def run(url: str, consults: int, runs: int) -> dict[str, float]:
    engine = engine_for(url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        filters = seed(session, consults, now)
        began = time.perf_counter()
        facts.refresh(session)
        session.commit()
        first_refresh = (time.perf_counter() - began) * 1000
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()

    def dashboard() -> object:
        with Session(engine) as session:
            facts.refresh(session)
            figures = service.figures(session, filters)
            session.commit()
            return figures

    def baseline() -> object:
        first = service.week_number(filters.start)
        with Session(engine) as session:
            return session.execute(
                select(func.count(), func.sum(col(EquityFact.response_s))).where(
                    col(EquityFact.week) >= first, col(EquityFact.week) < first + filters.weeks
                )
            ).one()

    with Session(engine) as session:
        total = session.execute(select(func.count()).select_from(ConsultRequest)).scalar_one()
        figures = service.figures(session, filters)
    assert figures.overall.n == total, (figures.overall.n, total)
    dash = timed(dashboard, runs)
    base = timed(baseline, runs)
    engine.dispose()
    return {
        "consults": float(total),
        "first_refresh_ms": round(first_refresh),
        "dashboard_p50_ms": round(statistics.median(dash), 1),
        "dashboard_p95_ms": round(pct(dash, 0.95), 1),
        "baseline_p50_ms": round(statistics.median(base), 1),
        "ratio_p50": round(statistics.median(dash) / statistics.median(base), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--consults", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{Path(folder) / 'equity.sqlite3'}"
                migrate.upgrade(url)
                result = run(url, args.consults, args.runs)
        else:
            name = f"dari_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
            try:
                migrate.upgrade(url)
                result = run(url, args.consults, args.runs)
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        print(f"equity {backend}: " + ", ".join(f"{k}={v:g}" for k, v in result.items()))


if __name__ == "__main__":
    main()
