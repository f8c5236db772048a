"""The import of every domain's models, so SQLModel.metadata (and Alembic) sees all tables."""

from __future__ import annotations


def import_all_models() -> None:
    import server.accounts.models  # noqa: F401
    import server.assist.models  # noqa: F401
    import server.audit.models  # noqa: F401
    import server.calls.models  # noqa: F401
    import server.consults.models  # noqa: F401
    import server.notes.models  # noqa: F401
    import server.notifications.models  # noqa: F401
    import server.scheduling.models  # noqa: F401
