"""Slot search and booking on SQLite: 200 specialists with 8 weeks of weekly rules.

    .venv/bin/python -m bench.slots [--runs 200]

Compares, in the same run:
- slot search (scheduling.search, and GET /api/slots through the app) against a naive search
  (ORM objects per specialist, every slot of the window generated, then sorted);
- booking (checks + insert + audit + notification, one transaction each) against a
  bare insert of an appointment row per transaction.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time as clock
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server import migrate
from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.accounts.security import hash_password
from server.app import create_app
from server.consults.models import ConsultRequest, ConsultStatus, Sex
from server.db import engine_for
from server.scheduling import booking, rosters, search
from server.scheduling import slots as grid
from server.scheduling.models import (
    Appointment,
    AppointmentStatus,
    ExceptionKind,
    RosterException,
    RosterRule,
    RuleKind,
)
from server.settings import Settings

SPECIALISTS = 200
WEEKS = 8
PASSWORD = "bench-password-1"


def seed(session: Session, start_day: date) -> tuple[Specialty, User, list[User]]:
    """Regions, 20 hospitals (5 hubs), 200 specialists, per-week rules for 8 weeks, leave."""
    regions = [Region(code=f"r{i}", name_ko=f"지역{i}", name_en=f"Region {i}") for i in range(5)]
    session.add_all(regions)
    specialty = Specialty(code="cardiology", name_ko="심장내과", name_en="Cardiology")
    session.add(specialty)
    session.flush()
    hospitals = [
        Organisation(
            name_ko=f"병원{i}",
            name_en=f"Hospital {i}",
            kind=OrgKind.HOSPITAL,
            region_id=regions[i % 5].id or 0,
            is_hub=i < 5,
        )
        for i in range(20)
    ]
    clinic = Organisation(
        name_ko="보건지소", name_en="Clinic", kind=OrgKind.CLINIC, region_id=regions[0].id or 0
    )
    session.add_all([*hospitals, clinic])
    session.flush()
    password_hash = hash_password(PASSWORD)
    specialists = [
        User(
            email=f"s{i}@bench.example",
            name=f"전문의{i}",
            password_hash=password_hash,
            role=Role.SPECIALIST,
            organisation_id=hospitals[i % 20].id or 0,
            specialty_id=specialty.id,
        )
        for i in range(SPECIALISTS)
    ]
    gp = User(
        email="gp@bench.example",
        name="GP",
        password_hash=password_hash,
        role=Role.GP,
        organisation_id=clinic.id or 0,
    )
    session.add_all([*specialists, gp])
    session.flush()
    monday = start_day - timedelta(days=start_day.weekday())
    rng = random.Random(42)
    for specialist in specialists:
        morning = rng.choice([time(8, 0), time(9, 0), time(10, 0)])
        for week in range(WEEKS):
            first = monday + timedelta(weeks=week)
            for weekday in range(5):
                for begin, end in ((morning, time(morning.hour + 3)), (time(14, 0), time(17, 0))):
                    session.add(
                        RosterRule(
                            specialist_id=specialist.id or 0,
                            weekday=weekday,
                            start_time=begin,
                            end_time=end,
                            slot_minutes=20,
                            kind=RuleKind.CONSULT,
                            valid_from=first,
                            valid_to=first + timedelta(days=6),
                        )
                    )
            session.add(
                RosterRule(
                    specialist_id=specialist.id or 0,
                    weekday=rng.randrange(7),
                    start_time=time(0),
                    end_time=time(0),
                    slot_minutes=60,
                    kind=RuleKind.ONCALL,
                    valid_from=first,
                    valid_to=first + timedelta(days=6),
                )
            )
        # A few days of leave for one specialist in ten.
        if rng.random() < 0.1:
            leave_day = monday + timedelta(days=rng.randrange(WEEKS * 7))
            session.add(
                RosterException(
                    specialist_id=specialist.id or 0,
                    kind=ExceptionKind.LEAVE,
                    starts_at=datetime.combine(leave_day, time(0), tzinfo=UTC),
                    ends_at=datetime.combine(leave_day + timedelta(days=3), time(0), tzinfo=UTC),
                )
            )
    session.flush()
    return specialty, gp, specialists


def make_consults(session: Session, gp: User, specialty: Specialty, n: int) -> list[ConsultRequest]:
    consults = [
        ConsultRequest(
            organisation_id=gp.organisation_id,
            requester_id=gp.id or 0,
            specialty_id=specialty.id or 0,
            status=ConsultStatus.REQUESTED,
            patient_chart_number=f"B-{i}",
            patient_age=50,
            patient_sex=Sex.MALE,
            clinical_question="bench",
        )
        for i in range(n)
    ]
    session.add_all(consults)
    session.flush()
    return consults


def naive_search(
    session: Session,
    specialty_id: int,
    start: datetime,
    end: datetime,
    home_region: int,
    limit: int,
) -> list[tuple[datetime, int]]:
    """The obvious way: ORM objects per specialist, every slot generated, then one sort."""
    found: list[tuple[int, datetime, int]] = []
    for user in session.exec(
        select(User).where(User.specialty_id == specialty_id, User.role == Role.SPECIALIST)
    ):
        organisation = session.get(Organisation, user.organisation_id)
        assert organisation is not None
        tz = rosters.zone(organisation.timezone)
        rules = session.exec(
            select(RosterRule).where(
                RosterRule.specialist_id == user.id, RosterRule.kind == RuleKind.CONSULT
            )
        ).all()
        leave = session.exec(
            select(RosterException).where(RosterException.specialist_id == user.id)
        ).all()
        booked = session.exec(
            select(Appointment).where(
                Appointment.specialist_id == user.id, Appointment.status == AppointmentStatus.ACTIVE
            )
        ).all()
        tier = (
            0
            if organisation.region_id == home_region and organisation.is_hub
            else (1 if organisation.region_id == home_region else 2)
        )
        for day in grid.local_dates(start, end, tz):
            for rule in rules:
                for slot in grid.rule_slots(rosters.as_weekly(rule), day, tz):
                    if slot.starts_at < start or slot.ends_at > end:
                        continue
                    blocked: list[RosterException | Appointment] = [*leave, *booked]
                    if any(
                        grid.overlaps(slot.starts_at, slot.ends_at, b.starts_at, b.ends_at)
                        for b in blocked
                    ):
                        continue
                    found.append((tier, slot.starts_at, user.id or 0))
    found.sort()
    return [(s, uid) for _, s, uid in found[:limit]]


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        began = clock.perf_counter()
        fn()
        samples.append((clock.perf_counter() - began) * 1000)
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--bookings", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dari-bench-"))
    url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    migrate.upgrade(url)
    engine = engine_for(url)
    today = datetime.now(UTC).date()
    with Session(engine, expire_on_commit=False) as session:
        specialty, gp, specialists = seed(session, today)
        consults = make_consults(session, gp, specialty, args.bookings * 2 + 10)
        session.commit()
        rule_count = len(session.exec(select(RosterRule.id)).all())
    home_region = 1
    origin = datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)
    rng = random.Random(7)

    def window() -> tuple[datetime, datetime]:
        begin = origin + timedelta(hours=rng.randrange(0, 14 * 24))
        return begin, begin + timedelta(days=14)

    def fast() -> object:
        begin, end = window()
        with Session(engine) as session:
            return search.search_slots(
                session,
                specialty_id=specialty.id or 0,
                start=begin,
                end=end,
                home_region_id=home_region,
                limit=20,
            )

    def fast_earliest() -> object:
        begin, end = window()
        with Session(engine) as session:
            return search.search_slots(
                session,
                specialty_id=specialty.id or 0,
                start=begin,
                end=end,
                home_region_id=home_region,
                policy="earliest",
                limit=20,
            )

    def naive() -> object:
        begin, end = window()
        with Session(engine) as session:
            return naive_search(session, specialty.id or 0, begin, end, home_region, 20)

    # Same answer from both (same window): the benchmark compares equals.
    with Session(engine) as session:
        a = search.search_slots(
            session,
            specialty_id=specialty.id or 0,
            start=origin,
            end=origin + timedelta(days=14),
            home_region_id=home_region,
            limit=20,
        )
        b = naive_search(
            session, specialty.id or 0, origin, origin + timedelta(days=14), home_region, 20
        )
        assert [(s.starts_at, s.candidate.specialist_id) for s in a] == b, "fast and naive differ"

    fast_ms = timed(fast, args.runs)
    earliest_ms = timed(fast_earliest, args.runs)
    naive_ms = timed(naive, max(5, args.runs // 20))

    settings = Settings.model_validate(
        {
            "database_url": url,
            "secret_key": "bench",
            "var_dir": workdir,
            "urgent_check_seconds": 0,
            "totp_required_roles": [],  # the benchmark's users sign in with a password alone
        }
    )
    with TestClient(create_app(settings)) as client:
        csrf = client.get("/api/auth/csrf").json()["csrf_token"]
        login = client.post(
            "/api/auth/login",
            json={"email": gp.email, "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert login.status_code == 200
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]

        def http_search() -> object:
            begin, end = window()
            response = client.get(
                "/api/slots",
                params={
                    "specialty_id": specialty.id,
                    "start": begin.isoformat(),
                    "end": end.isoformat(),
                },
            )
            assert response.status_code == 200 and response.json()
            return response

        def http_bare() -> object:
            return client.get("/healthz")

        http_ms = timed(http_search, args.runs)
        bare_ms = timed(http_bare, args.runs)

    # Booking throughput: every booking its own transaction, as a request would be.
    with Session(engine) as session:
        free = search.search_slots(
            session,
            specialty_id=specialty.id or 0,
            start=origin,
            end=origin + timedelta(days=14),
            home_region_id=home_region,
            limit=args.bookings,
        )
    began = clock.perf_counter()
    for slot, consult in zip(free, consults[: args.bookings], strict=False):
        with Session(engine, expire_on_commit=False) as session:
            actor = session.get(User, gp.id)
            record = session.get(ConsultRequest, consult.id)
            assert actor is not None and record is not None
            booking.book(session, actor, record, slot.candidate.specialist_id, slot.starts_at)
            session.commit()
    booking_rate = len(free) / (clock.perf_counter() - began)
    began = clock.perf_counter()
    spare = consults[args.bookings : args.bookings * 2]
    far = origin + timedelta(days=400)
    for i, consult in enumerate(spare):
        with Session(engine) as session:
            session.add(
                Appointment(
                    consult_request_id=consult.id or 0,
                    specialist_id=specialists[0].id or 0,
                    starts_at=far + timedelta(minutes=20 * i),
                    ends_at=far + timedelta(minutes=20 * i + 20),
                    booked_by_id=gp.id or 0,
                )
            )
            session.commit()
    insert_rate = len(spare) / (clock.perf_counter() - began)

    def row(label: str, samples: list[float]) -> str:
        p50, p95 = pct(samples, 0.5), pct(samples, 0.95)
        return f"{label:<28} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms  ({len(samples)} runs)"

    speed_up = statistics.median(naive_ms) / statistics.median(fast_ms)
    lines = [
        f"SQLite, {SPECIALISTS} specialists, {rule_count} roster rules ({WEEKS} weeks),",
        "two-week window starting at a random hour, 20 results",
        row("slot search, regional_first", fast_ms),
        row("slot search, earliest", earliest_ms),
        row("naive search (baseline)", naive_ms),
        f"  regional_first vs naive: x{speed_up:.0f} faster at p50",
        row("GET /api/slots (HTTP)", http_ms),
        row("GET /healthz (baseline)", bare_ms),
        f"booking: {booking_rate:.0f} bookings/s ({len(free)}, one transaction each)",
        f"bare insert (baseline): {insert_rate:.0f} rows/s;"
        f" booking costs x{insert_rate / booking_rate:.1f}",
    ]
    print("\n".join(lines))
    engine.dispose()


if __name__ == "__main__":
    main()
