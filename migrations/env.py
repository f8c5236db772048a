"""Alembic environment: the models are the schema's source, migrations its history."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from server.columns import StrEnumType
from server.db import ensure_sqlite_directory
from server.models import import_all_models
from server.settings import get_settings

import_all_models()
target_metadata = SQLModel.metadata
config = context.config


def database_url() -> str:
    # A URL handed in by server.migrate (tests, the CLI) wins over the environment.
    url = config.attributes.get("database_url")
    return str(url) if url else get_settings().resolved_database_url()


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write our own column types with their import, so migrations stay runnable."""
    if type_ == "type" and isinstance(obj, StrEnumType):
        # The database holds a plain string: a migration never depends on a Python enum.
        return f"sa.String(length={obj.length})"
    module = type(obj).__module__
    if type_ == "type" and module.startswith("server."):
        autogen_context.imports.add(f"import {module}")
        return f"{module}.{type(obj).__name__}()"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=render_item,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # A throwaway engine: migrating must not leave pooled connections in the app's
    # engine cache (they would outlive a test database that is dropped afterwards).
    ensure_sqlite_directory(database_url())
    engine = create_engine(database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
