"""Refusals that the consults domain raises."""

from __future__ import annotations

from server.errors import AppError, Conflict, NotFound


class ConsultNotFound(NotFound):
    def __init__(self, what: str = "consult") -> None:
        super().__init__(what)


class RegistrationNumberRefused(AppError):
    def __init__(self, field: str) -> None:
        super().__init__(
            "registration_number_refused",
            f"{field}: this looks like a resident registration number (주민등록번호). "
            "Dari never stores them; identify the patient only by your chart number, "
            "age and sex, and remove the number.",
            422,
            extra={"field": field},
        )
        self.field = field


class TransitionNotAllowed(Conflict):
    def __init__(self, current: str, wanted: str, allowed: list[str]) -> None:
        listed = ", ".join(allowed) if allowed else "none (the consult is closed)"
        super().__init__(
            "transition_not_allowed",
            f"a consult that is {current} cannot become {wanted}; allowed: {listed}",
            current=current,
            wanted=wanted,
            allowed=allowed,
        )


class ReportSigned(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "report_signed",
            "a signed report version never changes; write an amendment instead",
        )


class AttachmentTooLarge(AppError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "attachment_too_large",
            f"the file is larger than the limit of {limit // (1024 * 1024)} MB; nothing was stored",
            413,
            extra={"limit_bytes": limit},
        )


class AttachmentTypeRefused(AppError):
    def __init__(self) -> None:
        super().__init__(
            "attachment_type_refused",
            "only JPEG, PNG, PDF and DICOM files are accepted (decided from the file's "
            "contents, not its name)",
            415,
        )
