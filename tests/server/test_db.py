"""The embedded database runs in WAL mode with foreign keys enforced; unique violations are
told apart by the name of the index, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from server import migrate
from server.accounts.models import Region, Role, User
from server.db import engine_for, unique_name, violated_constraint
from server.scheduling.models import Appointment
from tests.factories import make_region, make_specialty, make_user
from tests.scheduling.factories import make_consult, make_hospital, make_specialist


def test_sqlite_uses_wal_and_enforces_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pragmas.sqlite3'}"
    migrate.upgrade(url)
    engine = engine_for(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with Session(engine) as session, pytest.raises(IntegrityError):
            session.add(
                User(
                    email="orphan@test.example",
                    name="x",
                    password_hash="x",
                    role=Role.GP,
                    organisation_id=424242,
                )
            )
            session.commit()
    finally:
        engine.dispose()


def violation(database_url: str, row: SQLModel) -> str | None:
    """Insert `row` in a transaction of its own; the name the refusal is told apart by."""
    with Session(engine_for(database_url)) as session:
        session.add(row)
        with pytest.raises(IntegrityError) as refused:
            session.flush()
        session.rollback()
    return violated_constraint(refused.value)


def test_violated_constraint_names_the_unique_index(database_url: str, db: Session) -> None:
    specialty = make_specialty(db)
    specialist = make_specialist(db, make_hospital(db), specialty)
    gp = make_user(db)
    consult = make_consult(db, gp, specialty)
    starts_at = datetime(2030, 1, 7, 9, tzinfo=UTC)

    def appointment(consult_id: int, starts_at: datetime) -> Appointment:
        return Appointment(
            consult_request_id=consult_id,
            specialist_id=specialist.id or 0,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=20),
            booked_by_id=gp.id or 0,
        )

    db.add(appointment(consult.id or 0, starts_at))
    db.commit()
    other = make_consult(db, gp, specialty)
    later = starts_at + timedelta(hours=1)
    # Two unique indexes of one table, told apart (SQLite names only their columns).
    slot_taken = violation(database_url, appointment(other.id or 0, starts_at))
    consult_booked = violation(database_url, appointment(consult.id or 0, later))
    assert slot_taken == "uq_appointment_specialist_start_active"
    assert consult_booked == "uq_appointment_consult_active"
    # An unnamed unique constraint: the name PostgreSQL gives it, on SQLite too.
    code = make_region(db).code
    assert violation(database_url, Region(code=code, name_ko="x", name_en="x")) == "region_code_key"
    # Not a unique violation (a foreign key): no name.
    stray = User(
        email="stray@test.example",
        name="x",
        password_hash="x",
        role=Role.GP,
        organisation_id=424242,
    )
    assert violation(database_url, stray) is None


def test_unique_name_refuses_columns_without_a_unique_index() -> None:
    assert unique_name("appointment", ["starts_at", "specialist_id"]) == (
        "uq_appointment_specialist_start_active"
    )
    with pytest.raises(KeyError):
        unique_name("appointment", ["specialist_id"])
