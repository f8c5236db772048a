"""Refusals that the consults domain raises.

Each message is English and the catalog's msgid (marked with N_ so that a test finds
any without a Korean translation); values go in `params`, the field in `field`."""

from __future__ import annotations

from server.errors import AppError, Conflict, NotFound
from web.render import N_


class ConsultNotFound(NotFound):
    def __init__(self, what: str = "consult") -> None:
        super().__init__(what)


class RegistrationNumberRefused(AppError):
    def __init__(self, field: str) -> None:
        super().__init__(
            "registration_number_refused",
            N_(
                "This looks like a resident registration number (주민등록번호). Dari never "
                "stores them: it was taken out of the text. Identify the patient only by "
                "your chart number, age and sex."
            ),
            422,
            field=field,
        )
        self.field = field


class TransitionNotAllowed(Conflict):
    def __init__(self, current: str, wanted: str, allowed: list[str]) -> None:
        super().__init__(
            "transition_not_allowed",
            N_("A consult that is %(current)s cannot become %(wanted)s."),
            params={"current": current, "wanted": wanted},
            current=current,
            wanted=wanted,
            allowed=allowed,
        )


class ReportSigned(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "report_signed",
            N_("A signed report version never changes; write an amendment instead."),
        )


class AttachmentTooLarge(AppError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "attachment_too_large",
            N_("The file is larger than the limit of %(mb)s MB; nothing was stored."),
            413,
            field="file",
            params={"mb": limit // (1024 * 1024)},
            extra={"limit_bytes": limit},
        )


class AttachmentTypeRefused(AppError):
    def __init__(self) -> None:
        super().__init__(
            "attachment_type_refused",
            N_(
                "Only JPEG, PNG, PDF and DICOM files are accepted (decided from the file's "
                "contents, not its name); nothing was stored."
            ),
            415,
            field="file",
        )
