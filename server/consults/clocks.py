"""Response clocks: the target time to a first specialist response, and escalation."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from server.accounts.models import Role, User
from server.consults import lifecycle
from server.consults.models import ConsultRequest, ConsultStatus, Urgency
from server.notifications import service as notifications
from server.ops import metrics
from server.settings import Settings, get_settings
from web.render import N_


def target_for(urgency: str, settings: Settings) -> timedelta:
    minutes = {
        Urgency.URGENT: settings.consult_target_minutes_urgent,
        Urgency.SOON: settings.consult_target_minutes_soon,
        Urgency.ROUTINE: settings.consult_target_minutes_routine,
    }[Urgency(urgency)]
    return timedelta(minutes=minutes)


def due_at(consult: ConsultRequest, settings: Settings) -> datetime | None:
    """When the first specialist response is due (None before it is requested)."""
    if consult.requested_at is None:
        return None
    return consult.requested_at + target_for(consult.urgency, settings)


def is_overdue(consult: ConsultRequest, settings: Settings, now: datetime) -> bool:
    """Waiting for a first response past its target."""
    due = due_at(consult, settings)
    return (
        due is not None
        and consult.first_response_at is None
        and consult.status in lifecycle.OPEN_TO_POOL
        and now > due
    )


def escalate_overdue(
    session: Session, now: datetime, settings: Settings | None = None
) -> list[ConsultRequest]:
    """Escalate every consult past its response target (run every urgent_check_seconds by
    the app's background task, server.scheduling.urgent.escalation_task, or by the CLI):
    status escalated, the specialty's specialists nationwide and the clinic's
    administrators notified. Returns the consults escalated now."""
    settings = settings or get_settings()
    waiting = session.exec(
        select(ConsultRequest).where(
            ConsultRequest.status == ConsultStatus.REQUESTED,
            col(ConsultRequest.first_response_at).is_(None),
            col(ConsultRequest.requested_at).is_not(None),
        )
    ).all()
    escalated = []
    for consult in waiting:
        if not is_overdue(consult, settings, now):
            continue
        # Every app process runs this: hold the row and re-read it, so of two runs at
        # once the second finds the consult escalated (or answered) and leaves it.
        lifecycle.lock(session, consult)
        session.refresh(consult)
        if not is_overdue(consult, settings, now):
            continue
        lifecycle.transition(
            session,
            consult,
            ConsultStatus.ESCALATED,
            actor=None,
            reason=N_("no specialist response in time"),
        )
        recipients = session.exec(
            select(User.id).where(
                User.active == True,  # noqa: E712
                (
                    (col(User.role) == Role.SPECIALIST)
                    & (col(User.specialty_id) == consult.specialty_id)
                )
                | (
                    (col(User.role) == Role.ADMIN)
                    & (col(User.organisation_id) == consult.organisation_id)
                ),
            )
        ).all()
        notifications.notify_many(
            session,
            [user_id for user_id in recipients if user_id is not None],
            "consult.overdue",
            {"consult": consult.public_id, "urgency": consult.urgency},
        )
        escalated.append(consult)
    metrics.record_escalation("overdue", len(escalated))
    return escalated
