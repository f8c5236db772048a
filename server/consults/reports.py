"""The specialist's report: drafts that save as they type, signed versions that never
change, amendments as new versions pointing to the one they amend."""

from __future__ import annotations

from sqlmodel import Session, col, select

from server.clock import utcnow
from server.consults import lifecycle
from server.consults.access import Access, Viewing
from server.consults.errors import ReportSigned
from server.consults.models import ConsultReport, ConsultStatus
from server.consults.privacy import refuse_registration_numbers
from server.consults.schemas import ReportIn
from server.consults.service import audit_consult, record_first_response, signature_hash
from server.errors import AppError, Conflict, Forbidden, NotFound
from server.notes import service as notes
from web.render import N_

S = ConsultStatus
REPORT_TEXT = ("findings", "assessment", "recommendation", "follow_up")


def versions(session: Session, consult_id: int) -> list[ConsultReport]:
    """Every version, oldest first (drafts included)."""
    return list(
        session.exec(
            select(ConsultReport)
            .where(ConsultReport.consult_id == consult_id)
            .order_by(col(ConsultReport.version))
        ).all()
    )


def latest_signed(session: Session, consult_id: int) -> ConsultReport | None:
    return session.exec(
        select(ConsultReport)
        .where(ConsultReport.consult_id == consult_id, col(ConsultReport.signed_at).is_not(None))
        .order_by(col(ConsultReport.version).desc())
    ).first()


def open_draft(session: Session, consult_id: int) -> ConsultReport | None:
    return session.exec(
        select(ConsultReport).where(
            ConsultReport.consult_id == consult_id, col(ConsultReport.signed_at).is_(None)
        )
    ).first()


def _require_author(viewing: Viewing) -> None:
    if viewing.access != Access.ASSIGNED:
        raise Forbidden("only the assigned specialist writes the report")
    if viewing.consult.status not in lifecycle.REPORT_WRITABLE:
        raise Conflict(
            "report_not_open",
            "no report can be written while the consult is %(status)s",
            params={"status": viewing.consult.status},
        )


def _still_unsigned(session: Session, report: ConsultReport) -> None:
    """Ask the database, not the cached object, whether the row is still a draft;
    the row lock makes a concurrent signing wait (PostgreSQL; SQLite serialises writers)."""
    signed_at = session.execute(
        select(ConsultReport.signed_at).where(ConsultReport.id == report.id).with_for_update()
    ).scalar_one()
    if signed_at is not None:
        raise ReportSigned()


def save_draft(session: Session, viewing: Viewing, data: ReportIn) -> ConsultReport:
    """Create or update the one open draft (autosave); refused once signed."""
    _require_author(viewing)
    lifecycle.lock(session, viewing.consult)
    refuse_registration_numbers(data.model_dump(include=set(REPORT_TEXT)))
    consult_id = viewing.consult.id or 0
    draft = open_draft(session, consult_id)
    if draft is None:
        if latest_signed(session, consult_id) is not None:
            raise ReportSigned()
        draft = ConsultReport(consult_id=consult_id, version=1, author_id=viewing.user.id or 0)
    else:
        _still_unsigned(session, draft)
        if draft.author_id != viewing.user.id:
            raise Forbidden("this draft belongs to another specialist")
    for name, value in data.model_dump().items():
        setattr(draft, name, value)
    draft.updated_at = utcnow()
    session.add(draft)
    record_first_response(viewing.consult, viewing.user)
    session.add(viewing.consult)
    session.flush()
    audit_consult(
        session,
        "report.draft",
        viewing,
        object_type="report",
        object_id=f"{draft.id}",
        consult=viewing.consult.public_id,
        version=draft.version,
    )
    return draft


def sign(session: Session, viewing: Viewing) -> ConsultReport:
    """Freeze the open draft for ever, with a hash of what was signed; the shared note
    is frozen with it."""
    _require_author(viewing)
    lifecycle.lock(session, viewing.consult)
    consult = viewing.consult
    draft = open_draft(session, consult.id or 0)
    if draft is None:
        raise Conflict("no_draft", "there is no draft to sign")
    _still_unsigned(session, draft)
    if not (draft.findings.strip() or draft.assessment.strip() or draft.recommendation.strip()):
        raise AppError("report_empty", "write findings, an assessment or a recommendation", 422)
    now = utcnow().replace(microsecond=0)
    draft.signed_at = now
    draft.content_hash = signature_hash(
        {
            "consult": consult.public_id,
            "version": draft.version,
            "amends": draft.amends_id,
            "author": draft.author_id,
            "signed_at": now.isoformat(),
            **{name: getattr(draft, name) for name in REPORT_TEXT},
            "referral_needed": draft.referral_needed,
            "referral_urgency": draft.referral_urgency,
            "amendment_reason": draft.amendment_reason,
        }
    )
    session.add(draft)
    if consult.report_signed_at is None:
        consult.report_signed_at = now
    session.add(consult)
    session.flush()
    # The shared note becomes read-only with the first signature, in this same
    # transaction (idempotent: an amendment's signing finds it frozen already).
    notes.freeze(session, consult, actor_id=viewing.user.id)
    if consult.status in (S.ACCEPTED, S.SCHEDULED, S.IN_PROGRESS):
        # Signed: the case goes to the GP's part (decision and close).
        lifecycle.transition(
            session,
            consult,
            S.REPORT_PENDING,
            actor=viewing.user,
            reason=N_("report signed"),
            ip=viewing.ip,
        )
    audit_consult(
        session,
        "report.sign",
        viewing,
        object_type="report",
        object_id=f"{draft.id}",
        consult=consult.public_id,
        version=draft.version,
        content_hash=draft.content_hash,
    )
    return draft


def amend(session: Session, viewing: Viewing, reason: str) -> ConsultReport:
    """Open a new draft version that amends the latest signed one, with a reason."""
    _require_author(viewing)
    lifecycle.lock(session, viewing.consult)
    consult_id = viewing.consult.id or 0
    refuse_registration_numbers({"reason": reason})
    if open_draft(session, consult_id) is not None:
        raise Conflict("draft_open", "finish or sign the open draft first")
    signed = latest_signed(session, consult_id)
    if signed is None:
        raise Conflict("nothing_to_amend", "there is no signed report to amend")
    draft = ConsultReport(
        consult_id=consult_id,
        version=signed.version + 1,
        author_id=viewing.user.id or 0,
        amends_id=signed.id,
        amendment_reason=reason.strip(),
        **{name: getattr(signed, name) for name in REPORT_TEXT},
        referral_needed=signed.referral_needed,
        referral_urgency=signed.referral_urgency,
    )
    session.add(draft)
    session.flush()
    audit_consult(
        session,
        "report.amend",
        viewing,
        object_type="report",
        object_id=f"{draft.id}",
        consult=viewing.consult.public_id,
        version=draft.version,
        amends=signed.id,
    )
    return draft


def read_versions(session: Session, viewing: Viewing) -> list[ConsultReport]:
    """The history as this viewer may see it (drafts only for their author), audited."""
    if viewing.access not in (Access.CLINIC, Access.ASSIGNED, Access.ADMIN):
        raise NotFound("report")
    shown = [
        report
        for report in versions(session, viewing.consult.id or 0)
        if report.signed_at is not None or report.author_id == viewing.user.id
    ]
    audit_consult(
        session,
        "report.read",
        viewing,
        object_type="report",
        object_id=viewing.consult.public_id,
        versions=[r.version for r in shown],
    )
    return shown


def start_from_note(session: Session, viewing: Viewing, text: str) -> ConsultReport:
    """Add the note (all of it or the selection the browser sent) to the draft's
    findings, creating the draft if there is none: the report starts from the note in
    one click, also from the call page, where no report editor is open."""
    draft = open_draft(session, viewing.consult.id or 0)
    text = text.strip()
    fields = {name: getattr(draft, name) if draft else "" for name in REPORT_TEXT}
    fields["findings"] = f"{fields['findings']}\n\n{text}".strip() if fields["findings"] else text
    data = ReportIn(
        **fields,
        referral_needed=draft.referral_needed if draft else False,
        referral_urgency=draft.referral_urgency if draft else "none",
    )
    return save_draft(session, viewing, data)
