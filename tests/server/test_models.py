"""Enum columns: a plain VARCHAR in the database, the StrEnum in Python."""

from __future__ import annotations

from enum import StrEnum

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel, select

from server.accounts.models import Role
from server.columns import StrEnumType
from server.consults.models import ConsultRequest, ConsultStatus, Sex, Urgency
from server.models import import_all_models
from tests.conftest import observer_engine
from tests.consults.helpers import make_consult, make_team


class Colour(StrEnum):
    RED = "red"


def test_binds_the_enum_or_its_value_and_loads_the_enum() -> None:
    column_type = StrEnumType(Colour, 8)
    # SQLAlchemy's dialect classes are not annotated.
    dialects = (sqlite.dialect(), postgresql.dialect())  # type: ignore[no-untyped-call]
    for dialect in dialects:
        assert column_type.compile(dialect=dialect) == "VARCHAR(8)"
        assert column_type.process_bind_param(Colour.RED, dialect) == "red"
        assert type(column_type.process_bind_param("red", dialect)) is str
        assert column_type.process_bind_param(None, dialect) is None
        assert column_type.process_result_value("red", dialect) is Colour.RED
        assert column_type.process_result_value(None, dialect) is None
        with pytest.raises(ValueError):
            column_type.process_bind_param("blue", dialect)  # never stored


def test_every_enum_column_is_long_enough_for_its_values() -> None:
    import_all_models()
    found = []
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, StrEnumType):
                found.append(column.type.enum_class)
                longest = max(len(value) for value in column.type.enum_class)
                assert longest <= column.type.length, f"{table.name}.{column.name}"
    assert {ConsultStatus, Urgency, Sex, Role} <= set(found)


def test_stored_as_plain_string_loaded_as_enum(db: Session, database_url: str) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    with observer_engine(database_url).connect() as connection:
        row = connection.execute(
            text("SELECT status, urgency, patient_sex FROM consultrequest WHERE id = :id"),
            {"id": consult.id},
        ).one()
    assert tuple(row) == ("requested", "routine", "female")
    assert all(type(value) is str for value in row)

    with Session(observer_engine(database_url)) as session:
        loaded = session.exec(
            select(ConsultRequest)
            .where(ConsultRequest.status == "requested")  # a plain value
            .where(ConsultRequest.id == consult.id)
        ).one()
        assert loaded.status is ConsultStatus.REQUESTED
        assert loaded.urgency is Urgency.ROUTINE
        assert loaded.patient_sex is Sex.FEMALE
        assert loaded.outcome is None

        loaded.status = "bogus"  # type: ignore[assignment]
        with pytest.raises(StatementError):
            session.flush()
        session.rollback()
    with observer_engine(database_url).connect() as connection:
        status = connection.execute(
            text("SELECT status FROM consultrequest WHERE id = :id"), {"id": consult.id}
        ).scalar()
    assert status == "requested"
