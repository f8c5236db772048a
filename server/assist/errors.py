"""Refusals that the assist domain raises."""

from __future__ import annotations

from server.errors import AppError


class AssistOff(AppError):
    def __init__(self) -> None:
        super().__init__(
            "assist_off", "the triage assist is not switched on for your organisation", 403
        )


class TextTooLong(AppError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "assist_text_too_long",
            "the text is too long for a suggestion (at most %(limit)s)",
            422,
            params={"limit": limit},
        )
