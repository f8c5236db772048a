"""The consult's state machine: the one place that decides which status may follow which.

Other domains move a consult through `transition`, e.g. booking:

    from server.consults import lifecycle
    lifecycle.transition(session, consult, ConsultStatus.SCHEDULED, actor=user, reason="booked")

`actor=None` means the system (escalation, scheduler jobs). Each transition writes a
ConsultEvent (who, when, why), an audit event, and notifies the other side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from server.accounts.models import Role, User
from server.audit import service as audit
from server.calls.models import CallSession
from server.clock import utcnow
from server.consults.errors import TransitionNotAllowed
from server.consults.models import (
    ConsultEvent,
    ConsultMode,
    ConsultReport,
    ConsultRequest,
    ConsultStatus,
)
from server.consults.privacy import refuse_registration_numbers
from server.errors import AppError, Conflict, Forbidden
from server.notifications import service as notifications
from server.scheduling.models import Appointment, AppointmentStatus
from web.render import N_

S = ConsultStatus


class Party(StrEnum):
    CLINIC = "clinic"  # a GP of the requesting organisation
    SPECIALIST = "specialist"  # the assigned specialist (or the pool, to take or decline)
    SYSTEM = "system"  # escalation, booking and call jobs (actor=None)


C, SP, SY = Party.CLINIC, Party.SPECIALIST, Party.SYSTEM

# from → {to: who may make that move}. Anything not listed is refused with 409.
TRANSITIONS: dict[ConsultStatus, dict[ConsultStatus, frozenset[Party]]] = {
    S.DRAFT: {
        S.REQUESTED: frozenset({C}),
        S.SCHEDULED: frozenset({C}),  # the GP books a slot while writing the request
        S.CANCELLED: frozenset({C}),
    },
    S.REQUESTED: {
        S.ACCEPTED: frozenset({SP}),
        S.SCHEDULED: frozenset({C, SP, SY}),  # booked straight into a specialist's slot
        S.DECLINED: frozenset({SP}),
        S.CANCELLED: frozenset({C}),
        S.ESCALATED: frozenset({SY}),
    },
    S.ESCALATED: {
        S.ACCEPTED: frozenset({SP}),
        S.SCHEDULED: frozenset({C, SP, SY}),
        S.DECLINED: frozenset({SP}),
        S.CANCELLED: frozenset({C}),
    },
    S.ACCEPTED: {
        S.SCHEDULED: frozenset({C, SP, SY}),  # a video call is booked
        S.IN_PROGRESS: frozenset({C, SP, SY}),  # call joined, or the written exchange starts
        S.REPORT_PENDING: frozenset({SP}),  # enough said: the specialist writes the report
        S.REQUESTED: frozenset({SP}),  # handed back to the pool
        S.CANCELLED: frozenset({C, SP}),
    },
    S.SCHEDULED: {
        S.IN_PROGRESS: frozenset({C, SP, SY}),  # the call starts (calls.service)
        S.REPORT_PENDING: frozenset({SP, SY}),  # the report is signed without a call
        S.NO_SHOW: frozenset({C, SP, SY}),
        S.ACCEPTED: frozenset({C, SP, SY}),  # appointment withdrawn, specialist keeps it
        S.REQUESTED: frozenset({C, SP, SY}),  # appointment withdrawn, back to the pool
        S.CANCELLED: frozenset({C, SP}),
    },
    S.IN_PROGRESS: {
        S.REPORT_PENDING: frozenset({SP, SY}),  # the specialist ends the call, or signs
        S.SCHEDULED: frozenset({C, SP, SY}),  # a written consult escalated to a call
    },
    S.REPORT_PENDING: {
        S.COMPLETED: frozenset({C}),  # the GP closes the case (needs a signed report)
        S.IN_PROGRESS: frozenset({C, SP}),  # more questions before the report
        S.SCHEDULED: frozenset({C, SP, SY}),  # a follow-up call after all
    },
    S.NO_SHOW: {S.SCHEDULED: frozenset({C, SP, SY}), S.CANCELLED: frozenset({C, SP})},
    S.COMPLETED: {},
    S.DECLINED: {},
    S.CANCELLED: {},
}

# The named sets of statuses. Pages, rules and queries use these, never a list of their
# own, so a change to the state machine changes every page that groups consults.
TERMINAL = frozenset(status for status, moves in TRANSITIONS.items() if not moves)
# What the pages call closed: the terminal states and nothing else (a no-show may
# still be booked again or cancelled, so it is open).
CLOSED = TERMINAL
# Sent and not closed, in the order the home pages list them: escalated first, then
# the way a case moves through the others.
OPEN = (
    S.ESCALATED,
    S.REQUESTED,
    S.ACCEPTED,
    S.SCHEDULED,
    S.NO_SHOW,
    S.IN_PROGRESS,
    S.REPORT_PENDING,
)
# Unassigned and waiting for a specialist: the specialty pool sees these and may take them.
OPEN_TO_POOL = frozenset({S.REQUESTED, S.ESCALATED})
# Booking from these assigns the slot's specialist.
UNASSIGNED = frozenset({S.DRAFT, *OPEN_TO_POOL})
# A slot may be booked for these (booking moves the consult to scheduled).
BOOKABLE = frozenset(status for status, moves in TRANSITIONS.items() if S.SCHEDULED in moves)
# A video consult's call can be joined in these.
JOINABLE = frozenset({S.ACCEPTED, S.SCHEDULED, S.IN_PROGRESS})
# The report is written once the specialist has the case (live or written); amendments
# also after the GP has closed it.
REPORT_WRITABLE = frozenset({S.ACCEPTED, S.SCHEDULED, S.IN_PROGRESS, S.REPORT_PENDING, S.COMPLETED})
NEEDS_REASON = frozenset({S.DECLINED, S.CANCELLED, S.NO_SHOW, S.ESCALATED})
# Reaching these ends the consult's live appointment: the call is over (report pending)
# or the case is (closed); a done consult keeps no "booked" appointment anywhere.
ENDS_APPOINTMENT = frozenset({S.REPORT_PENDING, S.NO_SHOW, *TERMINAL})


def call_joinable(consult: ConsultRequest) -> bool:
    """A video consult whose call can be joined now."""
    return consult.mode == ConsultMode.VIDEO and consult.status in JOINABLE


def allowed_from(status: str) -> list[str]:
    """Every status that may follow `status` (whoever makes the move)."""
    return [str(target) for target in TRANSITIONS.get(ConsultStatus(status), {})]


def party_of(actor: User | None, consult: ConsultRequest) -> Party | None:
    """The actor's side in this consult, or None when they have no part in it."""
    if actor is None:
        return Party.SYSTEM
    if actor.role == Role.GP and actor.organisation_id == consult.organisation_id:
        return Party.CLINIC
    if actor.role == Role.SPECIALIST:
        if consult.assigned_specialist_id == actor.id:
            return Party.SPECIALIST
        if (
            consult.assigned_specialist_id is None
            and consult.status in OPEN_TO_POOL
            and actor.specialty_id == consult.specialty_id
        ):
            return Party.SPECIALIST
    return None


def lock(session: Session, consult: ConsultRequest) -> None:
    """Hold the consult's row until the transaction ends, so writers of one consult
    (two autosaving tabs, a transition and a signing) take turns on PostgreSQL; SQLite
    already runs one writing transaction at a time."""
    session.exec(
        select(ConsultRequest.id).where(ConsultRequest.id == consult.id).with_for_update()
    ).first()


def has_signed_report(session: Session, consult: ConsultRequest) -> bool:
    return (
        session.exec(
            select(ConsultReport.id).where(
                ConsultReport.consult_id == consult.id, col(ConsultReport.signed_at).is_not(None)
            )
        ).first()
        is not None
    )


def transition(
    session: Session,
    consult: ConsultRequest,
    to_status: ConsultStatus | str,
    actor: User | None,
    reason: str = "",
    *,
    ip: str = "",
    specialist: User | None = None,
) -> ConsultEvent:
    """Move the consult to `to_status` or refuse: 409 naming the allowed moves, 403 for the
    wrong party, 422 for a missing reason.

    `specialist`: who the consult is booked with when booking assigns it (requested or
    escalated → scheduled); a specialist booking for themself may leave it out."""
    target = ConsultStatus(to_status)
    # Lock the row and re-read its status: of two specialists taking the same consult
    # at once, the second waits for the first and is then refused (PostgreSQL; SQLite
    # serialises writing transactions anyway).
    stored = session.exec(
        select(ConsultRequest.status).where(ConsultRequest.id == consult.id).with_for_update()
    ).first()
    if stored is not None and stored != consult.status:
        session.refresh(consult)
    current = ConsultStatus(consult.status)
    moves = TRANSITIONS[current]
    if target not in moves:
        raise TransitionNotAllowed(current, target, allowed_from(current))
    party = party_of(actor, consult)
    if party is None or party not in moves[target]:
        who = tuple(sorted(p.value for p in moves[target]))
        raise Forbidden(
            "only the %(who)s may move a %(current)s consult to %(target)s",
            params={"who": who, "current": current, "target": target},
        )
    reason = reason.strip()
    if target in NEEDS_REASON and not reason:
        raise AppError(
            "reason_required",
            N_("Say why: a reason is needed for this step, and the other side reads it."),
            422,
            field="reason",
            extra={"wanted": target.value},
        )
    if len(reason) > 2000:
        raise AppError(
            "reason_too_long",
            N_("The reason is limited to 2000 characters."),
            422,
            field="reason",
        )
    if reason:
        refuse_registration_numbers({"reason": reason})
    if target == S.COMPLETED and not has_signed_report(session, consult):
        raise Conflict(
            "report_not_signed", N_("A consult is closed only after the report is signed.")
        )
    if target == S.SCHEDULED and current in UNASSIGNED:
        specialist = specialist or (actor if party == Party.SPECIALIST else None)
        if specialist is None or specialist.role != Role.SPECIALIST:
            raise Conflict("specialist_required", "booking needs the specialist it is with")

    now = utcnow()
    _apply_side_effects(consult, current, target, actor, specialist, now)
    consult.status = target
    session.add(consult)
    event = ConsultEvent(
        consult_id=consult.id or 0,
        at=now,
        actor_id=actor.id if actor else None,
        kind="transition",
        from_value=current,
        to_value=target,
        reason=reason,
    )
    session.add(event)
    session.flush()
    if target in ENDS_APPOINTMENT:
        end_live_appointment(session, consult, actor)
    audit.record(
        session,
        "consult.transition",
        actor_id=actor.id if actor else None,
        ip=ip,
        object_type="consult",
        object_id=consult.public_id,
        organisation_id=consult.organisation_id,
        detail={"from": current.value, "to": target.value},
    )
    _notify_other_side(session, consult, actor, current, target)
    return event


def _apply_side_effects(
    consult: ConsultRequest,
    current: ConsultStatus,
    target: ConsultStatus,
    actor: User | None,
    specialist: User | None,
    now: datetime,
) -> None:
    if current == S.DRAFT and target != S.CANCELLED:
        consult.requested_at = now
    if target == S.REQUESTED and current in (S.ACCEPTED, S.SCHEDULED):
        # Handed back: the pool sees it again.
        consult.assigned_specialist_id = None
        consult.assigned_organisation_id = None
    if target == S.ACCEPTED and current in OPEN_TO_POOL and actor is not None:
        consult.assigned_specialist_id = actor.id
        consult.assigned_organisation_id = actor.organisation_id
    if target == S.SCHEDULED and current in UNASSIGNED and specialist is not None:
        consult.assigned_specialist_id = specialist.id
        consult.assigned_organisation_id = specialist.organisation_id
    first_answer = target in (S.ACCEPTED, S.DECLINED) and actor is not None
    if first_answer and consult.first_response_at is None:
        consult.first_response_at = now
    if target == S.ESCALATED:
        consult.escalated_at = now
    if target == S.COMPLETED:
        consult.completed_at = now


def _notify_other_side(
    session: Session,
    consult: ConsultRequest,
    actor: User | None,
    current: ConsultStatus,
    target: ConsultStatus,
) -> None:
    payload = {"consult": consult.public_id, "from": current.value, "to": target.value}
    recipients = {consult.requester_id}
    if consult.assigned_specialist_id is not None:
        recipients.add(consult.assigned_specialist_id)
    if actor is not None:
        recipients.discard(actor.id or 0)
    notifications.notify_many(session, recipients, "consult.status", payload)


def record_mode_change(
    session: Session,
    consult: ConsultRequest,
    mode: ConsultMode,
    *,
    actor: User | None,
    reason: str = "",
) -> ConsultEvent:
    """A written consult becoming a call (or a failed call continuing in writing):
    the same consult, one more line in its timeline."""
    event = ConsultEvent(
        consult_id=consult.id or 0,
        actor_id=actor.id if actor else None,
        kind="mode",
        from_value=consult.mode,
        to_value=mode,
        reason=reason.strip(),
    )
    consult.mode = mode
    session.add(consult)
    session.add(event)
    session.flush()
    return event


def allowed_for(actor: User | None, consult: ConsultRequest) -> list[str]:
    """The moves this actor may make now (the buttons a page shows)."""
    party = party_of(actor, consult)
    if party is None:
        return []
    moves = TRANSITIONS[consult.status]
    return [str(target) for target, parties in moves.items() if party in parties]


def end_live_appointment(session: Session, consult: ConsultRequest, actor: User | None) -> None:
    """The consult's active appointment becomes completed (a call was held) or cancelled
    (none was), with its calendar SEQUENCE raised: FHIR, the calendar feed and the pages
    then agree with the consult."""
    appointment = session.exec(
        select(Appointment).where(
            Appointment.consult_request_id == consult.id,
            Appointment.status == AppointmentStatus.ACTIVE,
        )
    ).first()
    if appointment is None:
        return
    # A call since this appointment was booked (not an earlier one of the same consult).
    held = session.exec(
        select(CallSession.id).where(
            CallSession.consult_id == consult.id,
            col(CallSession.started_at) >= appointment.created_at,
        )
    ).first()
    appointment.status = AppointmentStatus.COMPLETED if held else AppointmentStatus.CANCELLED
    appointment.sequence += 1
    appointment.ended_at = utcnow()
    appointment.ended_by_id = actor.id if actor else None
    appointment.reason = appointment.reason or consult.status
    session.add(appointment)
    session.flush()


def record_call(session: Session, consult: ConsultRequest, what: str, detail: str = "") -> None:
    """A call started or ended: a line in the consult's timeline (kind "call")."""
    session.add(
        ConsultEvent(
            consult_id=consult.id or 0,
            kind="call",
            from_value="",
            to_value=what,
            reason=detail,
            actor_id=None,
        )
    )
    session.flush()


@dataclass(frozen=True)
class Action:
    """A button on the consult page: a verb, the status it leads to, and whether it asks
    for a reason and for confirmation (what cannot be undone)."""

    to: str
    label: str
    needs_reason: bool = False
    confirm: str = ""
    danger: bool = False


def actions_for(actor: User | None, consult: ConsultRequest) -> list[Action]:
    """The moves this actor may make by hand now, as verbs. Moves that happen by
    themselves (booking, the call starting, signing, closing with the outcome) are not
    buttons: their own forms make them."""
    allowed = set(allowed_for(actor, consult))
    current = ConsultStatus(consult.status)
    party = party_of(actor, consult)
    actions: list[Action] = []

    def offer(to: ConsultStatus, label: str, confirm: str = "", danger: bool = False) -> None:
        if to.value in allowed:
            actions.append(Action(to.value, label, to in NEEDS_REASON, confirm, danger))

    if current == S.DRAFT:
        offer(S.REQUESTED, N_("Send the request"))
    if current in OPEN_TO_POOL and party == Party.SPECIALIST:
        offer(S.ACCEPTED, N_("Accept"))
        offer(
            S.DECLINED,
            N_("Decline"),
            N_("Decline this consult? The clinic reads your reason; this cannot be undone."),
            danger=True,
        )
    if current == S.IN_PROGRESS and consult.mode == ConsultMode.VIDEO:
        offer(
            S.REPORT_PENDING,
            N_("End the call"),
            N_("End the call for both of you and go on to the report?"),
        )
    if current == S.REPORT_PENDING:
        offer(S.IN_PROGRESS, N_("Ask further questions"))
    if current == S.ACCEPTED and party == Party.SPECIALIST:
        offer(S.REQUESTED, N_("Hand back to the pool"))
    if current == S.SCHEDULED:
        offer(
            S.NO_SHOW,
            N_("Record a no-show"),
            N_("Record that the appointment was missed? The appointment ends."),
        )
    offer(
        S.CANCELLED,
        N_("Cancel the consult"),
        N_("Cancel this consult? This cannot be undone."),
        danger=True,
    )
    return actions


def stage_label(consult: ConsultRequest) -> str:
    """What the consult's badge says: its status, except that a signed report pending
    the GP reads as the GP's part."""
    if consult.status == S.REPORT_PENDING and consult.report_signed_at is not None:
        return N_("awaiting the GP's decision")
    return STATUS_LABELS.get(ConsultStatus(consult.status), str(consult.status))


# How a status reads (in English too: "in progress", not "in_progress").
STATUS_LABELS: dict[ConsultStatus, str] = {
    S.IN_PROGRESS: N_("in progress"),
    S.REPORT_PENDING: N_("awaiting report"),
    S.NO_SHOW: N_("missed appointment"),
}
