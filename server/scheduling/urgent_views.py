"""What the urgent pages show, as plain functions over the ring's state: a specialist's
rings, an administrator's alerts and escalation view, the GP's progress. The ring is
state, not an event: every page reads it from here, on load and whenever the user
channel says something changed, so a reload or a reconnect shows the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from server.accounts.models import Organisation, Role, Specialty, User
from server.consults.lifecycle import OPEN_TO_POOL
from server.consults.models import ConsultRequest, ConsultStatus
from server.scheduling import urgent
from server.scheduling.models import RingLevel, UrgentRequest, UrgentRing, UrgentStatus
from server.settings import Settings
from web.render import N_

# A taken ring stays on the others' pages this long, saying who took it.
TAKEN_SHOWN = timedelta(minutes=30)


def first_line(text: str, limit: int = 120) -> str:
    """The question's first line (what the ring and the triage view show of it)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


@dataclass
class Rung:
    person: User
    organisation: Organisation | None
    level: RingLevel
    at: datetime


@dataclass
class Card:
    """One urgent consult as the ring shows it (triage only: no history, files, notes)."""

    urgent: UrgentRequest
    consult: ConsultRequest
    specialty: Specialty | None
    clinic: Organisation | None
    question: str
    taken_by: User | None = None
    rung: list[Rung] = field(default_factory=list)

    @property
    def ringing(self) -> bool:
        return is_ringing(self.urgent, self.consult)


def is_ringing(item: UrgentRequest, consult: ConsultRequest) -> bool:
    return (
        item.status == UrgentStatus.RINGING
        and consult.assigned_specialist_id is None
        and consult.status in OPEN_TO_POOL
    )


def admins_alerted(item: UrgentRequest, consult: ConsultRequest) -> bool:
    """The regional hub's administrators have been alerted for this consult."""
    return item.level != RingLevel.REGIONAL or consult.status == ConsultStatus.ESCALATED


def card(session: Session, item: UrgentRequest, consult: ConsultRequest) -> Card:
    return Card(
        urgent=item,
        consult=consult,
        specialty=session.get(Specialty, consult.specialty_id),
        clinic=session.get(Organisation, consult.organisation_id),
        question=first_line(consult.clinical_question),
        taken_by=session.get(User, item.accepted_by_id) if item.accepted_by_id else None,
    )


def history(session: Session, item: UrgentRequest) -> list[Rung]:
    """Everyone rung for this request, in order, with when and at which level."""
    rows = session.exec(
        select(UrgentRing, User)
        .join(User, col(User.id) == col(UrgentRing.specialist_id))
        .where(UrgentRing.urgent_request_id == item.id)
        .order_by(col(UrgentRing.id))
    ).all()
    return [
        Rung(user, session.get(Organisation, user.organisation_id), ring.level, ring.rung_at)
        for ring, user in rows
    ]


@dataclass
class Panel:
    """The ring on a user's home page: what rings for them, what was taken, alerts."""

    ringing: list[Card] = field(default_factory=list)
    taken: list[Card] = field(default_factory=list)  # by someone else, recently
    mine: list[Card] = field(default_factory=list)  # taken by this user, recently
    alerts: list[Card] = field(default_factory=list)  # administrators: escalated ones
    pool_count: int | None = None


def pool_count(session: Session, specialist: User) -> int:
    """The specialty pool's size, as the inbox's "requests for my specialty" counts it."""
    return int(
        session.exec(
            select(func.count())
            .select_from(ConsultRequest)
            .where(
                col(ConsultRequest.assigned_specialist_id).is_(None),
                ConsultRequest.specialty_id == specialist.specialty_id,
                col(ConsultRequest.status).in_([s.value for s in OPEN_TO_POOL]),
            )
        ).one()
    )


def _recent(item: UrgentRequest, now: datetime) -> bool:
    return item.accepted_at is not None and item.accepted_at >= now - TAKEN_SHOWN


def panel_for(session: Session, user: User, now: datetime) -> Panel:
    """The ring state for one user (specialist or administrator; a GP's is empty)."""
    panel = Panel()
    if user.role == Role.SPECIALIST:
        rows = session.exec(
            select(UrgentRequest, ConsultRequest)
            .join(UrgentRing, col(UrgentRing.urgent_request_id) == col(UrgentRequest.id))
            .join(ConsultRequest, col(ConsultRequest.id) == col(UrgentRequest.consult_request_id))
            .where(
                UrgentRing.specialist_id == user.id,
                (col(UrgentRequest.status) == UrgentStatus.RINGING)
                | (col(UrgentRequest.accepted_at) >= now - TAKEN_SHOWN),
            )
            .order_by(col(UrgentRequest.started_at))
        ).all()
        for item, consult in rows:
            if is_ringing(item, consult):
                panel.ringing.append(card(session, item, consult))
            elif item.accepted_by_id == user.id and _recent(item, now):
                panel.mine.append(card(session, item, consult))
            elif item.accepted_by_id is not None and _recent(item, now):
                panel.taken.append(card(session, item, consult))
        panel.pool_count = pool_count(session, user)
    elif user.role == Role.ADMIN:
        for item, consult in _open_for_admin(session, user):
            if admins_alerted(item, consult):
                panel.alerts.append(card(session, item, consult))
    return panel


def _open_for_admin(
    session: Session, admin: User, since: datetime | None = None
) -> list[tuple[UrgentRequest, ConsultRequest]]:
    """Urgent requests whose escalations this administrator hears of (their region's hub,
    or everyone's when a region has no administrator): the open ones, and with `since`
    those taken after it."""
    condition = col(UrgentRequest.status) == UrgentStatus.RINGING
    if since is not None:
        condition = condition | (col(UrgentRequest.accepted_at) >= since)
    rows = session.exec(
        select(UrgentRequest, ConsultRequest)
        .join(ConsultRequest, col(ConsultRequest.id) == col(UrgentRequest.consult_request_id))
        .where(condition)
        .order_by(col(UrgentRequest.started_at))
    ).all()
    heard: dict[int, list[int]] = {}
    result = []
    for item, consult in rows:
        if item.region_id not in heard:
            heard[item.region_id] = urgent.hub_admins(session, item.region_id)
        if admin.id in heard[item.region_id]:
            if item.status == UrgentStatus.RINGING and not is_ringing(item, consult):
                continue  # taken some other way (booked): nothing to do
            result.append((item, consult))
    return result


@dataclass
class Escalation:
    """One urgent consult on the administrator's escalation view."""

    card: Card
    alerted: bool
    on_call_regional: list[urgent.OnCall]
    on_call_national: list[urgent.OnCall]
    candidates: list[User]  # specialists of the specialty not yet rung


def escalations_for(session: Session, admin: User, now: datetime) -> list[Escalation]:
    """Open urgent consults (and those taken in the last half hour) with their ring
    history, who is on call now, and whom the administrator could still ring."""
    found = []
    for item, consult in _open_for_admin(session, admin, since=now - TAKEN_SHOWN):
        shown = card(session, item, consult)
        shown.rung = history(session, item)
        on_call = urgent.oncall_now(session, item.specialty_id, now, item.region_id)
        rung_ids = {r.person.id for r in shown.rung}
        candidates = session.exec(
            select(User)
            .where(
                User.role == Role.SPECIALIST,
                User.specialty_id == item.specialty_id,
                col(User.active).is_(True),
            )
            .order_by(col(User.name))
        ).all()
        found.append(
            Escalation(
                card=shown,
                alerted=admins_alerted(item, consult),
                on_call_regional=[o for o in on_call if o.regional],
                on_call_national=[o for o in on_call if not o.regional],
                candidates=[c for c in candidates if c.id not in rung_ids],
            )
        )
    # Open ones first, the longest waiting first.
    found.sort(key=lambda e: (not e.card.ringing, e.card.urgent.started_at))
    return found


@dataclass
class Step:
    """One rung of the ladder on the GP's page."""

    what: str  # message id
    state: str  # "done" | "now" | "next" | "skipped"
    since: datetime | None = None
    at: datetime | None = None  # when a coming step starts
    rung: list[Rung] = field(default_factory=list)
    admins: list[User] = field(default_factory=list)


@dataclass
class Progress:
    urgent: UrgentRequest
    ringing: bool
    steps: list[Step]
    taken_by: User | None
    taken_by_organisation: Organisation | None


def progress(session: Session, consult: ConsultRequest, settings: Settings) -> Progress | None:
    """The GP's view of the ladder: region's on-call now, the national pool after the
    escalation time, the regional hub's administrators with it; who is rung, since when."""
    item = urgent.for_consult(session, consult.id or 0)
    if item is None:
        return None
    ringing = is_ringing(item, consult)
    rung = history(session, item)
    escalate_at = item.level_started_at + timedelta(minutes=settings.urgent_escalate_minutes)
    regional = [r for r in rung if r.level == RingLevel.REGIONAL]
    national = [r for r in rung if r.level == RingLevel.NATIONAL]
    direct = [r for r in rung if r.level == RingLevel.DIRECT]
    admins = [
        u
        for u in (session.get(User, i) for i in urgent.hub_admins(session, item.region_id))
        if u is not None
    ]
    alerted = admins_alerted(item, consult)
    at_regional = item.level == RingLevel.REGIONAL
    steps = [
        Step(
            N_("On-call specialists of your region"),
            ("now" if ringing and at_regional else "done") if regional else "skipped",
            since=item.started_at if regional else None,
            rung=regional,
        ),
        Step(
            N_("National on-call pool"),
            ("next" if at_regional else "now") if ringing else ("done" if national else "skipped"),
            since=None if at_regional else item.level_started_at,
            at=escalate_at if at_regional and ringing else None,
            rung=national,
        ),
        Step(
            N_("Administrators of the regional hub"),
            ("now" if alerted else "next") if ringing else ("done" if alerted else "skipped"),
            since=item.level_started_at if alerted and not at_regional else None,
            at=escalate_at if at_regional and ringing else None,
            admins=admins,
        ),
    ]
    if direct:
        steps.append(
            Step(
                N_("Rung by name by an administrator"),
                "now" if ringing else "done",
                since=direct[0].at,
                rung=direct,
            )
        )
    taken_by = session.get(User, item.accepted_by_id) if item.accepted_by_id else None
    return Progress(
        urgent=item,
        ringing=ringing,
        steps=steps,
        taken_by=taken_by,
        taken_by_organisation=(
            session.get(Organisation, taken_by.organisation_id) if taken_by else None
        ),
    )
