"""Refusals that the accounts domain raises."""

from __future__ import annotations

from server.errors import AppError


class InvalidCredentials(AppError):
    def __init__(self) -> None:
        super().__init__("invalid_credentials", "wrong email or password", 401)


class TooManyAttempts(AppError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "too_many_attempts",
            "too many failed logins; try again in %(minutes)s minutes",
            429,
            params={"minutes": max(1, retry_after // 60)},
            headers={"Retry-After": str(retry_after)},
        )
        self.retry_after = retry_after


class InvalidOtp(AppError):
    def __init__(self) -> None:
        super().__init__("invalid_otp", "wrong or expired code", 401)


class OtpRequired(AppError):
    """The password was right; the authenticator's code (`otp`) must come with it."""

    def __init__(self) -> None:
        super().__init__("otp_required", "enter the code from your authenticator app", 401)


class NotAuthenticated(AppError):
    def __init__(self) -> None:
        super().__init__("unauthenticated", "please log in", 401)


class CsrfRejected(AppError):
    def __init__(self) -> None:
        super().__init__("csrf_failed", "the form expired or came from another site; reload", 403)
