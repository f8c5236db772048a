"""Migrations are the schema's only source: they match the models and round-trip."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from server import migrate
from server.db import engine_for
from tests.conftest import PG_ADMIN_URL


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    migrate.upgrade(url)
    created = _tables(url)
    assert {"user", "organisation", "region", "specialty", "auditevent"} <= created
    migrate.check(url)  # raises if models and migrations differ
    migrate.downgrade(url, "base")
    assert _tables(url) == set()
    migrate.upgrade(url)
    assert _tables(url) == created
    migrate.check(url)


@pytest.mark.slow  # every migration down and up again
def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'round.sqlite3'}"
    try:
        _round_trip(url)
    finally:
        engine_for(url).dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgresql_upgrade_downgrade_upgrade() -> None:
    name = f"dari_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        _round_trip(url)
    finally:
        engine_for(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migration_files_are_dated_and_reversible() -> None:
    versions = Path(migrate.__file__).resolve().parent.parent / "migrations" / "versions"
    files = sorted(versions.glob("*.py"))
    assert files
    for path in files:
        assert path.name[:8].isdigit(), f"{path.name} is not dated"
        source = path.read_text()
        assert "def downgrade() -> None:" in source
        body = source.split("def downgrade() -> None:", 1)[1]
        assert "op." in body, f"{path.name} has an empty downgrade"
