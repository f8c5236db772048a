"""The embedded database runs in WAL mode with foreign keys enforced."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from server import migrate
from server.accounts.models import User
from server.db import engine_for


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
                    role="gp",
                    organisation_id=424242,
                )
            )
            session.commit()
    finally:
        engine.dispose()
