"""Scheduling refusals (all AppError, rendered by the one handler)."""

from __future__ import annotations

from typing import Any

from server.errors import AppError, Conflict


class InvalidRoster(AppError):
    def __init__(self, code: str, message: str, *, params: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, 422, params=params)


class InvalidSearch(AppError):
    def __init__(self, code: str, message: str, *, params: dict[str, Any] | None = None) -> None:
        super().__init__(code, message, 422, params=params)


class SlotTaken(Conflict):
    """A lost race or an already booked slot: the answer carries the next free slots."""

    def __init__(self, next_slots: list[dict[str, Any]]) -> None:
        super().__init__("slot_taken", "this slot has just been booked", next_slots=next_slots)
