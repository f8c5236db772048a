"""Refusals of the shared-note service (each carries its status and a stable code)."""

from __future__ import annotations

from typing import Any

from server.errors import AppError, Conflict


class NoteFrozen(Conflict):
    def __init__(self) -> None:
        super().__init__("note_frozen", "the report is signed; the note is read-only")


# An edit the note's algebra refuses (OTError): the reason is for developers (`detail`).
OT_REFUSED = "the edit does not fit the note; reload it"


class InvalidOperation(AppError):
    def __init__(
        self, message: str, *, params: dict[str, Any] | None = None, detail: str | None = None
    ) -> None:
        extra = {"detail": detail} if detail is not None else None
        super().__init__("invalid_operation", message, 422, params=params, extra=extra)


class RevisionTooOld(Conflict):
    def __init__(self, oldest: int) -> None:
        super().__init__(
            "revision_too_old", "the update log no longer reaches back that far", oldest=oldest
        )


class NoteTooLong(AppError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "note_too_long",
            "a note holds at most %(limit)s characters",
            413,
            params={"limit": limit},
        )
