"""Consult rules as plain functions: requests, the written exchange, attachments,
the GP's decision and closing. Reports live in reports.py, the state machine in
lifecycle.py, visibility in access.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, or_, select

from server.accounts.models import Role, Specialty, User
from server.audit import service as audit
from server.clock import utcnow
from server.consults import attachments as files
from server.consults import lifecycle
from server.consults.access import (
    Access,
    Need,
    Viewing,
    grants,
    sees_full_record,
)
from server.consults.models import (
    ConsultAttachment,
    ConsultEvent,
    ConsultMessage,
    ConsultMode,
    ConsultRequest,
    ConsultStatus,
    GPDecision,
    Urgency,
)
from server.consults.privacy import refuse_registration_numbers
from server.consults.schemas import CloseIn, ConsultIn, DecisionIn, DraftPatch
from server.errors import AppError, Conflict, Forbidden, NotFound
from server.notifications import service as notifications
from server.scheduling import urgent as urgent_rings

S = ConsultStatus
FREE_TEXT = ("patient_chart_number", "clinical_question", "history", "medication", "vital_signs")


def audit_consult(
    session: Session,
    action: str,
    viewing: Viewing,
    *,
    object_type: str = "consult",
    object_id: str | None = None,
    **detail: Any,
) -> None:
    """Every read and write of a consult, report or attachment leaves an audit event."""
    detail["access"] = viewing.access.value
    audit.record(
        session,
        action,
        actor_id=viewing.user.id,
        ip=viewing.ip,
        object_type=object_type,
        object_id=object_id or viewing.consult.public_id,
        organisation_id=viewing.consult.organisation_id,
        detail=detail,
    )


# ---- what a viewer may do (loading: access.load_consult) ----------------------------


def require_full_record(viewing: Viewing, what: str = "consult") -> None:
    """The triage view (the pool) does not reach messages, files or reports: 404."""
    if not sees_full_record(viewing.access):
        raise NotFound(what)


def require_participant(viewing: Viewing) -> None:
    """Writing is for the clinic and the assigned specialist, not administrators."""
    if not grants(viewing.access, Need.PARTICIPANT):
        raise Forbidden("only the requesting clinic and the assigned specialist may do this")


def visible_consults(session: Session, user: User, limit: int = 200) -> list[ConsultRequest]:
    """A user's list: the clinic's consults, a specialist's own and their pool's, an
    administrator's organisation's."""
    query = select(ConsultRequest)
    if user.role == Role.GP:
        query = query.where(ConsultRequest.organisation_id == user.organisation_id)
    elif user.role == Role.SPECIALIST:
        query = query.where(
            or_(
                col(ConsultRequest.assigned_specialist_id) == user.id,
                (col(ConsultRequest.assigned_specialist_id).is_(None))
                & (col(ConsultRequest.specialty_id) == user.specialty_id)
                & (col(ConsultRequest.status).in_([s.value for s in lifecycle.OPEN_TO_POOL])),
            )
        )
    else:
        query = query.where(
            or_(
                col(ConsultRequest.organisation_id) == user.organisation_id,
                col(ConsultRequest.assigned_organisation_id) == user.organisation_id,
            )
        )
    query = query.order_by(col(ConsultRequest.id).desc()).limit(limit)
    return list(session.exec(query).all())


def list_for(session: Session, user: User, ip: str = "") -> list[ConsultRequest]:
    """The user's list, audited (it shows chart numbers): which consults were listed."""
    consults = visible_consults(session, user)
    audit.record(
        session,
        "consult.list",
        actor_id=user.id,
        ip=ip,
        object_type="consult",
        organisation_id=user.organisation_id,
        detail={"consults": [c.public_id for c in consults]},
    )
    return consults


# ---- the request ---------------------------------------------------------------


def create_request(session: Session, user: User, data: ConsultIn, ip: str = "") -> ConsultRequest:
    """A GP's new consult request: a draft, submitted at once unless `submit` is false."""
    if user.role != Role.GP:
        raise Forbidden("only GPs request consults")
    fields = data.model_dump()
    refuse_registration_numbers({name: fields[name] for name in FREE_TEXT})
    if session.get(Specialty, data.specialty_id) is None:
        raise AppError("unknown_specialty", "no such specialty", 422)
    consult = ConsultRequest(
        organisation_id=user.organisation_id,
        requester_id=user.id or 0,
        specialty_id=data.specialty_id,
        status=S.DRAFT,
        urgency=data.urgency,
        mode=data.mode,
        patient_chart_number=data.patient_chart_number.strip(),
        patient_age=data.patient_age,
        patient_sex=data.patient_sex,
        clinical_question=data.clinical_question,
        history=data.history,
        medication=data.medication,
        vital_signs=data.vital_signs,
    )
    session.add(consult)
    session.flush()
    session.add(
        ConsultEvent(consult_id=consult.id or 0, actor_id=user.id, from_value="", to_value=S.DRAFT)
    )
    viewing = Viewing(consult, Access.CLINIC, user, ip)
    audit_consult(session, "consult.create", viewing)
    if data.submit:
        submit(session, viewing)
    return consult


def update_draft(session: Session, viewing: Viewing, patch: DraftPatch) -> ConsultRequest:
    """The GP edits the request while it is still a draft."""
    consult = viewing.consult
    if viewing.access != Access.CLINIC:
        raise Forbidden("only the requesting clinic edits its request")
    if consult.status != S.DRAFT:
        raise Conflict("not_a_draft", "a request can be edited only while it is a draft")
    changes = patch.model_dump(exclude_none=True)
    refuse_registration_numbers({k: v for k, v in changes.items() if k in FREE_TEXT})
    for name, value in changes.items():
        setattr(consult, name, value)
    session.add(consult)
    session.flush()
    audit_consult(session, "consult.update", viewing, fields=sorted(changes))
    return consult


def submit(session: Session, viewing: Viewing, reason: str = "") -> ConsultEvent:
    """Send the draft to the specialty's pool, and tell its specialists."""
    consult = viewing.consult
    event = lifecycle.transition(
        session, consult, S.REQUESTED, actor=viewing.user, reason=reason, ip=viewing.ip
    )
    pool = session.exec(
        select(User.id).where(
            User.role == Role.SPECIALIST,
            User.specialty_id == consult.specialty_id,
            User.active == True,  # noqa: E712
        )
    ).all()
    notifications.notify_many(
        session,
        [user_id for user_id in pool if user_id is not None],
        "consult.requested",
        {"consult": consult.public_id, "urgency": consult.urgency},
    )
    if consult.urgency == Urgency.URGENT:
        # The one urgent path (page and API alike): ring the on-call specialists by roster.
        urgent_rings.start_urgent(session, viewing.user, consult, ip=viewing.ip)
    return event


def change_status(session: Session, viewing: Viewing, to: str, reason: str) -> ConsultEvent:
    """Any allowed move through the state machine, by a participant (or a pool specialist
    taking or declining)."""
    try:
        target = ConsultStatus(to)
    except ValueError:
        raise AppError(
            "unknown_status", "unknown status %(status)s", 422, params={"status": repr(to)}
        ) from None
    if target == S.COMPLETED:
        raise AppError("use_close", "close the consult with its outcome (POST …/close)", 422)
    if target == S.SCHEDULED:
        # Scheduling books an appointment and moves the consult itself (lifecycle.transition).
        raise AppError("use_booking", "book an appointment to schedule the consult", 422)
    if viewing.access == Access.ADMIN:
        raise Forbidden("administrators may read consults, not act in them")
    if target == S.REQUESTED and viewing.consult.status == S.DRAFT:
        return submit(session, viewing, reason)  # also tells the specialty's pool
    if target == S.ACCEPTED and viewing.user.role == Role.SPECIALIST:
        # An urgent consult being rung is taken through the ring (first accept wins).
        taken = urgent_rings.accept_consult(session, viewing.user, viewing.consult, ip=viewing.ip)
        if taken is not None:
            event = session.exec(
                select(ConsultEvent)
                .where(ConsultEvent.consult_id == viewing.consult.id)
                .order_by(col(ConsultEvent.id).desc())
            ).first()
            assert event is not None  # the ring's accept has just written it
            return event
    return lifecycle.transition(
        session, viewing.consult, target, actor=viewing.user, reason=reason, ip=viewing.ip
    )


def switch_mode(session: Session, viewing: Viewing, mode: ConsultMode, reason: str) -> ConsultEvent:
    """Written ↔ video without starting over: same consult, same thread, one timeline entry."""
    require_participant(viewing)
    consult = viewing.consult
    if consult.status in lifecycle.TERMINAL:
        raise Conflict(
            "consult_closed", "the consult is %(status)s", params={"status": consult.status}
        )
    if consult.mode == mode:
        raise Conflict("same_mode", "the consult is already %(mode)s", params={"mode": mode})
    refuse_registration_numbers({"reason": reason})
    previous = consult.mode
    event = lifecycle.record_mode_change(session, consult, mode, actor=viewing.user, reason=reason)
    audit_consult(session, "consult.mode", viewing, **{"from": previous, "to": str(mode)})
    _notify_counterpart(session, viewing, "consult.mode", {"mode": str(mode)})
    return event


def _notify_counterpart(
    session: Session, viewing: Viewing, kind: str, extra: dict[str, Any]
) -> None:
    consult = viewing.consult
    others = {consult.requester_id, consult.assigned_specialist_id} - {viewing.user.id, None}
    notifications.notify_many(
        session,
        [user_id for user_id in others if user_id is not None],
        kind,
        {"consult": consult.public_id, **extra},
    )


def record_first_response(consult: ConsultRequest, user: User) -> None:
    if user.role == Role.SPECIALIST and consult.first_response_at is None:
        consult.first_response_at = utcnow()


# ---- the written exchange --------------------------------------------------------


def post_message(
    session: Session, viewing: Viewing, body: str, reply_to_id: int | None = None
) -> ConsultMessage:
    """One message in the thread (a question back to the GP, an answer, advice)."""
    require_participant(viewing)
    consult = viewing.consult
    if consult.status in lifecycle.TERMINAL or consult.status == S.DRAFT:
        raise Conflict(
            "consult_not_open",
            "no messages on a %(status)s consult",
            params={"status": consult.status},
        )
    refuse_registration_numbers({"message": body})
    if reply_to_id is not None:
        parent = session.get(ConsultMessage, reply_to_id)
        if parent is None or parent.consult_id != consult.id:
            raise AppError("unknown_message", "the message replied to is not in this consult", 422)
    message = ConsultMessage(
        consult_id=consult.id or 0,
        author_id=viewing.user.id or 0,
        reply_to_id=reply_to_id,
        body=body.strip(),
    )
    session.add(message)
    record_first_response(consult, viewing.user)
    session.add(consult)
    session.flush()
    audit_consult(session, "consult.message", viewing, message_id=message.id)
    _notify_counterpart(session, viewing, "consult.message", {"message": message.id})
    return message


def messages_of(session: Session, consult: ConsultRequest) -> list[ConsultMessage]:
    return list(
        session.exec(
            select(ConsultMessage)
            .where(ConsultMessage.consult_id == consult.id)
            .order_by(col(ConsultMessage.id))
        ).all()
    )


def events_of(session: Session, consult: ConsultRequest) -> list[ConsultEvent]:
    return list(
        session.exec(
            select(ConsultEvent)
            .where(ConsultEvent.consult_id == consult.id)
            .order_by(col(ConsultEvent.id))
        ).all()
    )


# ---- attachments ---------------------------------------------------------------


def add_attachment(
    session: Session, viewing: Viewing, spooled: files.Spooled, root: Path
) -> ConsultAttachment:
    """Check the kind from the bytes and the name for registration numbers, then store."""
    require_participant(viewing)
    consult = viewing.consult
    if consult.status in lifecycle.TERMINAL:
        raise Conflict(
            "consult_closed",
            "no attachments on a %(status)s consult",
            params={"status": consult.status},
        )
    refuse_registration_numbers({"filename": spooled.filename})
    kind = files.check_kind(spooled)
    has_thumbnail = files.store(root, spooled, kind)
    attachment = ConsultAttachment(
        consult_id=consult.id or 0,
        uploader_id=viewing.user.id or 0,
        kind=kind,
        sha256=spooled.sha256,
        size=spooled.size,
        filename=spooled.filename,
        has_thumbnail=has_thumbnail,
    )
    session.add(attachment)
    session.flush()
    audit_consult(
        session,
        "attachment.create",
        viewing,
        object_type="attachment",
        object_id=attachment.public_id,
        consult=consult.public_id,
        sha256=spooled.sha256,
        kind=str(kind),
        size=spooled.size,
    )
    return attachment


def attachments_of(session: Session, consult: ConsultRequest) -> list[ConsultAttachment]:
    return list(
        session.exec(
            select(ConsultAttachment)
            .where(ConsultAttachment.consult_id == consult.id)
            .order_by(col(ConsultAttachment.id))
        ).all()
    )


def open_attachment(
    session: Session, viewing: Viewing, attachment_id: str, root: Path, *, thumbnail: bool = False
) -> tuple[ConsultAttachment, Path]:
    """The attachment's file for someone who may see the full record (audited)."""
    require_full_record(viewing, "attachment")
    attachment = session.exec(
        select(ConsultAttachment).where(
            ConsultAttachment.public_id == attachment_id,
            ConsultAttachment.consult_id == viewing.consult.id,
        )
    ).first()
    if attachment is None:
        raise NotFound("attachment")
    if thumbnail:
        if not attachment.has_thumbnail:
            raise NotFound("thumbnail")
        path = files.thumbnail_path(root, attachment.sha256)
    else:
        path = files.stored_path(root, attachment.sha256)
    if not path.is_file():
        raise NotFound("attachment file")
    audit_consult(
        session,
        "attachment.read",
        viewing,
        object_type="attachment",
        object_id=attachment.public_id,
        consult=viewing.consult.public_id,
        thumbnail=thumbnail,
    )
    return attachment, path


def media_type_of(attachment: ConsultAttachment) -> str:
    return files.MEDIA_TYPES[attachment.kind]


# ---- the GP's part: decision and closing ------------------------------------------


def signature_hash(payload: dict[str, Any]) -> str:
    """SHA-256 over the signed content, the signer and the time: printed and exported."""
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def record_decision(session: Session, viewing: Viewing, data: DecisionIn) -> GPDecision:
    """The GP's own decision and action after the advice, signed by the GP on saving."""
    if viewing.access != Access.CLINIC:
        raise Forbidden("the GP's decision is recorded by the requesting clinic")
    consult = viewing.consult
    if not lifecycle.has_signed_report(session, consult):
        raise Conflict("report_not_signed", "the GP's decision follows the signed advice")
    refuse_registration_numbers({"note": data.note})
    now = utcnow().replace(microsecond=0)
    decision = GPDecision(
        consult_id=consult.id or 0,
        author_id=viewing.user.id or 0,
        action=data.action,
        note=data.note.strip(),
        signed_at=now,
        content_hash=signature_hash(
            {
                "consult": consult.public_id,
                "author": viewing.user.id,
                "action": str(data.action),
                "note": data.note.strip(),
                "signed_at": now.isoformat(),
            }
        ),
    )
    session.add(decision)
    session.flush()
    audit_consult(session, "consult.decision", viewing, decision_id=decision.id)
    return decision


def decisions_of(session: Session, consult: ConsultRequest) -> list[GPDecision]:
    return list(
        session.exec(
            select(GPDecision)
            .where(GPDecision.consult_id == consult.id)
            .order_by(col(GPDecision.id))
        ).all()
    )


def close(session: Session, viewing: Viewing, data: CloseIn) -> ConsultEvent:
    """The GP closes the case with its outcome and, if they like, a usefulness rating."""
    if viewing.access != Access.CLINIC:
        raise Forbidden("the requesting clinic closes its consult")
    refuse_registration_numbers({"note": data.note})
    consult = viewing.consult
    event = lifecycle.transition(
        session,
        consult,
        S.COMPLETED,
        actor=viewing.user,
        reason=data.outcome.value,  # shown translated in the timeline
        ip=viewing.ip,
    )
    consult.outcome = data.outcome
    consult.usefulness = data.usefulness
    consult.outcome_note = data.note.strip()
    session.add(consult)
    session.flush()
    audit_consult(session, "consult.close", viewing, outcome=str(data.outcome))
    return event


def awaiting_clinic(session: Session, consults: list[ConsultRequest]) -> set[int]:
    """Open consults whose latest message is the specialist's: a question for the clinic."""
    open_ids = {c.id: c for c in consults if c.id and c.status not in lifecycle.CLOSED}
    if not open_ids:
        return set()
    latest: dict[int, int] = {}
    rows = session.exec(
        select(ConsultMessage.consult_id, ConsultMessage.author_id)
        .where(col(ConsultMessage.consult_id).in_(list(open_ids)))
        .order_by(col(ConsultMessage.id))
    ).all()
    for consult_id, author_id in rows:
        latest[consult_id] = author_id
    return {
        cid
        for cid, author in latest.items()
        if author == open_ids[cid].assigned_specialist_id and author is not None
    }
