"""Refusals of the shared-note service (each carries its status and a stable code)."""

from __future__ import annotations

from server.errors import AppError, Conflict


class NoteFrozen(Conflict):
    def __init__(self) -> None:
        super().__init__("note_frozen", "the report is signed; the note is read-only")


class InvalidOperation(AppError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_operation", message, 422)


class RevisionTooOld(Conflict):
    def __init__(self, oldest: int) -> None:
        super().__init__(
            "revision_too_old", "the update log no longer reaches back that far", oldest=oldest
        )


class NoteTooLong(AppError):
    def __init__(self, limit: int) -> None:
        super().__init__("note_too_long", f"a note holds at most {limit} characters", 413)
