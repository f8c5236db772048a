"""The scheduling models and migration 0003 agree (alembic check), on both databases."""

from __future__ import annotations

from sqlalchemy import inspect

from server import migrate
from server.db import engine_for


def test_models_match_migrations(database_url: str) -> None:
    migrate.check(database_url)  # raises if models and migrations differ
    tables = set(inspect(engine_for(database_url)).get_table_names())
    assert {
        "rosterrule",
        "rosterexception",
        "appointment",
        "urgentrequest",
        "urgentring",
        "calendarfeed",
    } <= tables
