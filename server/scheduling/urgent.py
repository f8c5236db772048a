"""Urgent consults: who is on call now, ringing them, first accept wins, escalation."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from server.accounts.models import Organisation, Role, User
from server.audit import service as audit
from server.clock import utcnow
from server.consults import clocks, lifecycle
from server.consults.lifecycle import OPEN_TO_POOL
from server.consults.models import ConsultRequest, ConsultStatus, Urgency
from server.errors import AppError, Conflict, NotFound
from server.notifications import service as notifications
from server.ops import metrics
from server.scheduling import slots as grid
from server.scheduling.models import (
    ExceptionKind,
    RingLevel,
    RosterException,
    RosterRule,
    RuleKind,
    UrgentRequest,
    UrgentRing,
    UrgentStatus,
)
from server.scheduling.rosters import as_weekly, zone
from server.settings import Settings

log = logging.getLogger("dari.scheduling")


@dataclass(frozen=True)
class OnCall:
    specialist: User
    organisation: Organisation
    regional: bool


def _on_duty(rule: RosterRule, at: datetime, tz_name: str) -> bool:
    """True when `at` falls inside this weekly rule on the local date it applies to."""
    tz = zone(tz_name)
    weekly = as_weekly(rule)
    day = at.astimezone(tz).date()
    for candidate_day in (day, day - timedelta(days=1)):
        if not grid.rule_applies(weekly, candidate_day):
            continue
        starts = grid.wall_to_utc_lenient(candidate_day, grid.minutes_of(rule.start_time), tz)
        ends = grid.wall_to_utc_lenient(
            candidate_day, grid.minutes_of(rule.end_time, is_end=True), tz
        )
        if starts <= at < ends:
            return True
    return False


def oncall_now(
    session: Session, specialty_id: int, at: datetime, region_id: int | None
) -> list[OnCall]:
    """Specialists of the specialty on call at `at` (and not on leave), regional first."""
    rows = session.exec(
        select(RosterRule, User, Organisation)
        .join(User, col(User.id) == col(RosterRule.specialist_id))
        .join(Organisation, col(Organisation.id) == col(User.organisation_id))
        .where(
            RosterRule.kind == RuleKind.ONCALL,
            User.specialty_id == specialty_id,
            col(User.active).is_(True),
            User.role == Role.SPECIALIST,
        )
    ).all()
    on_leave = set(
        session.exec(
            select(RosterException.specialist_id).where(
                RosterException.kind == ExceptionKind.LEAVE,
                col(RosterException.starts_at) <= at,
                col(RosterException.ends_at) > at,
            )
        ).all()
    )
    found: dict[int, OnCall] = {}
    for rule, user, organisation in rows:
        uid = user.id or 0
        if uid in found or uid in on_leave or not _on_duty(rule, at, organisation.timezone):
            continue
        found[uid] = OnCall(user, organisation, organisation.region_id == region_id)
    # Regional first, then hubs, then by id for a stable order.
    return sorted(
        found.values(),
        key=lambda o: (not o.regional, not o.organisation.is_hub, o.specialist.id or 0),
    )


def _mark_urgent_accepted(session: Session, consult: ConsultRequest, specialist: User) -> None:
    """The on-call specialist who won takes the consult (through the state machine)."""
    lifecycle.transition(session, consult, ConsultStatus.ACCEPTED, specialist, "urgent ring")


def _ring(
    session: Session,
    urgent: UrgentRequest,
    consult: ConsultRequest,
    people: list[User],
    level: RingLevel,
) -> list[int]:
    already = set(
        session.exec(
            select(UrgentRing.specialist_id).where(UrgentRing.urgent_request_id == urgent.id)
        ).all()
    )
    rung: list[int] = []
    for person in people:
        pid = person.id or 0
        if pid in already:
            continue
        session.add(UrgentRing(urgent_request_id=urgent.id or 0, specialist_id=pid, level=level))
        rung.append(pid)
    session.flush()
    notifications.notify_many(
        session,
        rung,
        "urgent.ring",
        {"urgent_id": urgent.id, "consult_id": consult.public_id, "level": level},
    )
    return rung


def _national_pool(session: Session, specialty_id: int, at: datetime) -> list[User]:
    """Everyone on call nationally; if nobody is, every active specialist of the specialty."""
    on_call = [o.specialist for o in oncall_now(session, specialty_id, at, None)]
    if on_call:
        return on_call
    return list(
        session.exec(
            select(User).where(
                User.role == Role.SPECIALIST,
                User.specialty_id == specialty_id,
                col(User.active).is_(True),
            )
        ).all()
    )


def hub_admins(session: Session, region_id: int) -> list[int]:
    """Who is alerted when a region's urgent ring escalates: the administrators of the
    region's hub hospital(s); failing those, any administrator in the region; failing
    those, every administrator (someone must hear of it)."""
    base = (
        select(User.id)
        .join(Organisation, col(Organisation.id) == col(User.organisation_id))
        .where(User.role == Role.ADMIN, col(User.active).is_(True))
    )
    for query in (
        base.where(Organisation.region_id == region_id, col(Organisation.is_hub).is_(True)),
        base.where(Organisation.region_id == region_id),
        base,
    ):
        ids = [i for i in session.exec(query.order_by(col(User.id))).all() if i is not None]
        if ids:
            return ids
    return []


def _alert_admins(session: Session, urgent: UrgentRequest, consult: ConsultRequest) -> list[int]:
    ids = hub_admins(session, urgent.region_id)
    notifications.notify_many(
        session,
        ids,
        "urgent.escalated",
        {"urgent_id": urgent.id, "consult_id": consult.public_id},
    )
    return ids


def start_urgent(
    session: Session,
    actor: User,
    consult: ConsultRequest,
    *,
    now: datetime | None = None,
    ip: str = "",
) -> UrgentRequest:
    """Ring the on-call specialists of the consult's specialty, those of the GP's region first."""
    now = now or utcnow()
    if consult.assigned_specialist_id is not None:
        raise Conflict("already_assigned", "this consult already has a specialist")
    if consult.status == ConsultStatus.DRAFT:
        lifecycle.transition(session, consult, ConsultStatus.REQUESTED, actor, "urgent", ip=ip)
    if consult.status not in OPEN_TO_POOL:
        raise Conflict(
            "not_open",
            "a consult that is %(status)s cannot be rung out",
            params={"status": consult.status},
        )
    existing = session.exec(
        select(UrgentRequest).where(UrgentRequest.consult_request_id == consult.id)
    ).first()
    if existing is not None:
        raise Conflict(
            "already_ringing", "this consult is already being rung", urgent_id=existing.id
        )
    organisation = session.get(Organisation, consult.organisation_id)
    if organisation is None:  # pragma: no cover - foreign key
        raise NotFound("organisation")
    regional = [
        o.specialist
        for o in oncall_now(session, consult.specialty_id, now, organisation.region_id)
        if o.regional
    ]
    level = RingLevel.REGIONAL if regional else RingLevel.NATIONAL
    urgent = UrgentRequest(
        consult_request_id=consult.id or 0,
        specialty_id=consult.specialty_id,
        region_id=organisation.region_id,
        level=level,
        started_at=now,
        level_started_at=now,
    )
    session.add(urgent)
    session.flush()
    consult.urgency = Urgency.URGENT
    session.add(consult)
    people = regional or _national_pool(session, consult.specialty_id, now)
    rung = _ring(session, urgent, consult, people, level)
    if not regional:
        _alert_admins(session, urgent, consult)
    audit.record(
        session,
        "urgent.started",
        actor_id=actor.id,
        ip=ip,
        object_type="urgentrequest",
        object_id=urgent.id or 0,
        organisation_id=consult.organisation_id,
        detail={"level": level, "rung": rung},
    )
    return urgent


def accept(
    session: Session,
    actor: User,
    urgent_id: int,
    *,
    now: datetime | None = None,
    ip: str = "",
    pool_ok: bool = False,
) -> UrgentRequest:
    """The first specialist to accept takes the consult; the others see it taken (409).
    Those rung may accept; with `pool_ok`, so may any specialist of the specialty (the
    pool sees the consult in its list and may take it from there)."""
    now = now or utcnow()
    urgent = session.get(UrgentRequest, urgent_id)
    rung = session.exec(
        select(UrgentRing.id).where(
            UrgentRing.urgent_request_id == urgent_id, UrgentRing.specialist_id == actor.id
        )
    ).first()
    in_pool = (
        pool_ok
        and actor.role == Role.SPECIALIST
        and (urgent is not None and actor.specialty_id == urgent.specialty_id)
    )
    if urgent is None or (rung is None and not in_pool):
        raise NotFound("urgent request")
    # One conditional UPDATE decides the race in the database: on PostgreSQL the second
    # writer waits for the first and then matches no row; SQLite serialises writers.
    won = session.connection().execute(
        update(UrgentRequest)
        .where(
            col(UrgentRequest.id) == urgent_id,
            col(UrgentRequest.accepted_by_id).is_(None),
            col(UrgentRequest.status) == UrgentStatus.RINGING,
        )
        .values(accepted_by_id=actor.id, accepted_at=now, status=UrgentStatus.ACCEPTED)
    )
    if won.rowcount != 1:
        session.refresh(urgent)
        raise Conflict("already_taken", "another specialist has taken this consult")
    session.refresh(urgent)
    consult = session.get(ConsultRequest, urgent.consult_request_id)
    if consult is None:  # pragma: no cover - foreign key
        raise NotFound("consult")
    admins_alerted = urgent.level != RingLevel.REGIONAL or consult.status == ConsultStatus.ESCALATED
    _mark_urgent_accepted(session, consult, actor)
    others = session.exec(
        select(UrgentRing.specialist_id).where(
            UrgentRing.urgent_request_id == urgent_id, UrgentRing.specialist_id != actor.id
        )
    ).all()
    payload = {"urgent_id": urgent_id, "consult_id": consult.public_id, "accepted_by": actor.id}
    notifications.notify_many(session, others, "urgent.taken", payload)
    # Administrators alerted for it: their alert clears (the panel reads the state).
    if admins_alerted:
        notifications.notify_many(
            session, hub_admins(session, urgent.region_id), "urgent.taken", payload
        )
    notifications.notify(session, consult.requester_id, "urgent.accepted", payload)
    audit.record(
        session,
        "urgent.accepted",
        actor_id=actor.id,
        ip=ip,
        object_type="urgentrequest",
        object_id=urgent_id,
        organisation_id=consult.organisation_id,
    )
    return urgent


def accept_consult(
    session: Session, actor: User, consult: ConsultRequest, *, ip: str = ""
) -> UrgentRequest | None:
    """Accept through the urgent path when the consult is being rung (the inbox's and the
    consult page's "accept" and the API all end here); None when it is not urgent."""
    urgent = for_consult(session, consult.id or 0)
    if urgent is None:
        return None
    if urgent.status != UrgentStatus.RINGING:
        raise Conflict("already_taken", "another specialist has taken this consult")
    return accept(session, actor, urgent.id or 0, ip=ip, pool_ok=True)


def for_consult(session: Session, consult_id: int) -> UrgentRequest | None:
    return session.exec(
        select(UrgentRequest).where(UrgentRequest.consult_request_id == consult_id)
    ).first()


def _ringing(session: Session, urgent_id: int) -> tuple[UrgentRequest, ConsultRequest]:
    urgent = session.get(UrgentRequest, urgent_id)
    if urgent is None:
        raise NotFound("urgent request")
    consult = session.get(ConsultRequest, urgent.consult_request_id)
    if consult is None:  # pragma: no cover - foreign key
        raise NotFound("consult")
    if urgent.status != UrgentStatus.RINGING or consult.assigned_specialist_id is not None:
        raise Conflict("already_taken", "another specialist has taken this consult")
    return urgent, consult


def ring_named(
    session: Session, admin: User, urgent_id: int, specialist_id: int, *, ip: str = ""
) -> list[int]:
    """An administrator rings one specialist of the specialty by name (on call or not)."""
    urgent, consult = _ringing(session, urgent_id)
    person = session.get(User, specialist_id)
    if (
        person is None
        or person.role != Role.SPECIALIST
        or not person.active
        or person.specialty_id != urgent.specialty_id
    ):
        raise AppError("not_in_specialty", "ring a specialist of the consult's specialty", 422)
    rung = _ring(session, urgent, consult, [person], RingLevel.DIRECT)
    if not rung:
        raise Conflict("already_rung", "this specialist is already being rung")
    audit.record(
        session,
        "urgent.ring_named",
        actor_id=admin.id,
        ip=ip,
        object_type="urgentrequest",
        object_id=urgent_id,
        organisation_id=consult.organisation_id,
        detail={"rung": rung},
    )
    return rung


def widen(
    session: Session, admin: User, urgent_id: int, *, now: datetime | None = None, ip: str = ""
) -> list[int]:
    """An administrator widens the ring: the national on-call pool, and when that is
    already ringing, every active specialist of the specialty."""
    now = now or utcnow()
    urgent, consult = _ringing(session, urgent_id)
    if urgent.level == RingLevel.REGIONAL:
        urgent.level = RingLevel.NATIONAL
        urgent.level_started_at = now
        session.add(urgent)
        people = _national_pool(session, urgent.specialty_id, now)
    else:
        people = list(
            session.exec(
                select(User).where(
                    User.role == Role.SPECIALIST,
                    User.specialty_id == urgent.specialty_id,
                    col(User.active).is_(True),
                )
            ).all()
        )
    rung = _ring(session, urgent, consult, people, RingLevel.NATIONAL)
    audit.record(
        session,
        "urgent.widened",
        actor_id=admin.id,
        ip=ip,
        object_type="urgentrequest",
        object_id=urgent_id,
        organisation_id=consult.organisation_id,
        detail={"rung": rung},
    )
    return rung


def escalate_stale_rings(session: Session, now: datetime, after_minutes: float = 10) -> list[int]:
    """Regional rings unanswered for `after_minutes` go to the national pool; admins are told."""
    cutoff = now - timedelta(minutes=after_minutes)
    stale = session.exec(
        select(UrgentRequest.id).where(
            UrgentRequest.status == UrgentStatus.RINGING,
            UrgentRequest.level == RingLevel.REGIONAL,
            col(UrgentRequest.level_started_at) <= cutoff,
        )
    ).all()
    escalated: list[int] = []
    for urgent_id in stale:
        # Conditional, so two app processes never escalate the same ring twice.
        moved = session.connection().execute(
            update(UrgentRequest)
            .where(
                col(UrgentRequest.id) == urgent_id,
                col(UrgentRequest.level) == RingLevel.REGIONAL,
                col(UrgentRequest.status) == UrgentStatus.RINGING,
            )
            .values(level=RingLevel.NATIONAL, level_started_at=now)
        )
        if moved.rowcount != 1:
            continue
        urgent = session.get(UrgentRequest, urgent_id)
        assert urgent is not None
        session.refresh(urgent)
        consult = session.get(ConsultRequest, urgent.consult_request_id)
        assert consult is not None
        if consult.status not in OPEN_TO_POOL or consult.assigned_specialist_id is not None:
            # Taken or closed some other way meanwhile: stop ringing.
            urgent.status = UrgentStatus.CANCELLED
            session.add(urgent)
            continue
        if consult.status == ConsultStatus.REQUESTED:
            lifecycle.transition(
                session,
                consult,
                ConsultStatus.ESCALATED,
                None,
                # A fixed sentence, translated where the timeline is shown (urgent.po).
                "no on-call answer within the escalation time",
            )
        rung = _ring(
            session,
            urgent,
            consult,
            _national_pool(session, urgent.specialty_id, now),
            RingLevel.NATIONAL,
        )
        admins = _alert_admins(session, urgent, consult)
        audit.record(
            session,
            "urgent.escalated",
            actor_id=None,
            object_type="urgentrequest",
            object_id=urgent_id or 0,
            organisation_id=consult.organisation_id,
            detail={"rung": rung, "admins": admins},
        )
        escalated.append(urgent_id or 0)
    return escalated


def escalate_once(engine: Engine, after_minutes: float) -> int:
    """One short transaction of ring escalation (the background task calls this)."""
    with Session(engine, expire_on_commit=False) as session:
        count = len(escalate_stale_rings(session, utcnow(), after_minutes))
        session.commit()
    metrics.record_escalation("urgent_ring", count)
    return count


def escalate_overdue_consults_once(engine: Engine, settings: Settings) -> int:
    """One short transaction of the consults' response clocks (past-target requests are
    escalated and everyone concerned told), in the same background task."""
    with Session(engine, expire_on_commit=False) as session:
        overdue = clocks.escalate_overdue(session, utcnow(), settings)
        for consult in overdue:
            if consult.urgency == Urgency.URGENT:
                alert_overdue(session, consult)
        session.commit()
    return len(overdue)


def alert_overdue(session: Session, consult: ConsultRequest) -> list[int]:
    """An urgent consult past its response target: the regional hub's administrators are
    alerted (the clinic's own, told by the clocks, may be nobody)."""
    urgent = for_consult(session, consult.id or 0)
    organisation = session.get(Organisation, consult.organisation_id)
    region_id = urgent.region_id if urgent else (organisation.region_id if organisation else 0)
    ids = hub_admins(session, region_id)
    notifications.notify_many(
        session,
        ids,
        "urgent.escalated",
        {"urgent_id": urgent.id if urgent else None, "consult_id": consult.public_id},
    )
    audit.record(
        session,
        "urgent.overdue_alerted",
        actor_id=None,
        object_type="consult",
        object_id=consult.public_id,
        organisation_id=consult.organisation_id,
        detail={"admins": ids},
    )
    return ids


async def escalation_loop(engine: Engine, settings: Settings) -> None:
    """Runs for the app's lifetime; cancelled at shutdown. Each round runs every job in
    its own transaction, so one failing leaves the others' work committed."""
    jobs: list[tuple[str, Callable[[], int]]] = [
        (
            "escalated %d urgent ring(s) to the national pool",
            functools.partial(escalate_once, engine, settings.urgent_escalate_minutes),
        ),
        (
            "escalated %d consult(s) past their response target",
            functools.partial(escalate_overdue_consults_once, engine, settings),
        ),
    ]
    while True:
        await asyncio.sleep(settings.urgent_check_seconds)
        for message, job in jobs:
            try:
                count = await asyncio.to_thread(job)
                if count:
                    log.info(message, count)
            except Exception:  # keep the loop alive; the next round retries
                log.exception("escalation job failed: %s", message)


@contextlib.asynccontextmanager
async def escalation_task(engine: Engine, settings: Settings) -> AsyncIterator[None]:
    """The escalation loop for the app's lifespan: urgent rings and consults' response
    clocks (both off when urgent_check_seconds is 0)."""
    if settings.urgent_check_seconds <= 0:
        yield
        return
    task = asyncio.create_task(escalation_loop(engine, settings))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def rung_ids(session: Session, urgent_id: int) -> list[int]:
    return list(
        session.exec(
            select(UrgentRing.specialist_id)
            .where(UrgentRing.urgent_request_id == urgent_id)
            .order_by(col(UrgentRing.id))
        ).all()
    )
