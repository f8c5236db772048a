"""What each role's home page shows: plain functions over the consults a user may see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from server.accounts.models import User
from server.consults import lifecycle
from server.consults.models import ConsultRequest, ConsultStatus, Urgency
from web.render import N_

S = ConsultStatus
URGENCY_RANK: dict[str, int] = {Urgency.URGENT: 0, Urgency.SOON: 1, Urgency.ROUTINE: 2}
# Urgent and not yet started: still ringing for someone.
RINGING = lifecycle.OPEN_TO_POOL | {S.ACCEPTED}
RECENT_CLOSED = 10


@dataclass
class Task:
    """Something a person has to do about a consult, with the words that say what."""

    consult: ConsultRequest
    what: str  # a message id, translated where it is shown
    call: bool = False  # the task is to join the call

    @property
    def href(self) -> str:
        base = f"/consults/{self.consult.public_id}"
        return f"{base}/call" if self.call else base


@dataclass
class GPHome:
    tasks: list[Task] = field(default_factory=list)
    by_status: list[tuple[str, list[ConsultRequest]]] = field(default_factory=list)
    closed: list[ConsultRequest] = field(default_factory=list)


@dataclass
class Inbox:
    pool: list[ConsultRequest] = field(default_factory=list)
    mine: list[ConsultRequest] = field(default_factory=list)
    closed: list[ConsultRequest] = field(default_factory=list)

    @property
    def ringing(self) -> list[ConsultRequest]:
        """Urgent consults nobody has taken yet, or taken by me and not yet started."""
        return [
            c for c in self.pool + self.mine if c.urgency == Urgency.URGENT and c.status in RINGING
        ]


def _when(consult: ConsultRequest) -> datetime:
    return consult.requested_at or consult.created_at


def triage_order(consults: list[ConsultRequest]) -> list[ConsultRequest]:
    """Urgent first, then soon, then routine; within each, the longest waiting first."""
    return sorted(consults, key=lambda c: (URGENCY_RANK.get(c.urgency, 3), _when(c)))


def gp_task(consult: ConsultRequest, asked: bool = False) -> Task | None:
    """What the clinic has to do next about this consult, if anything (`asked`: the
    specialist's message is the latest, a question waiting for the clinic)."""
    if consult.status == S.DRAFT:
        return Task(consult, N_("Finish and send the request"))
    if asked and consult.report_signed_at is None:
        return Task(consult, N_("The specialist asked a question: answer it"))
    if consult.report_signed_at is not None and consult.status not in lifecycle.CLOSED:
        return Task(consult, N_("Read the report and record your decision"))
    if lifecycle.call_joinable(consult) and consult.status == S.IN_PROGRESS:
        return Task(consult, N_("The call is on: join it"), call=True)
    return None


def gp_home(consults: list[ConsultRequest], asked: set[int] | None = None) -> GPHome:
    """A clinic's consults: what needs the GP, then the open ones by status, then the closed."""
    home = GPHome()
    for consult in triage_order(consults):
        task = gp_task(consult, consult.id in (asked or set()))
        if task is not None:
            home.tasks.append(task)
    for status in lifecycle.OPEN:
        group = triage_order([c for c in consults if c.status == status])
        if group:
            home.by_status.append((status.value, group))
    closed = [c for c in consults if c.status in lifecycle.CLOSED]
    home.closed = sorted(closed, key=_when, reverse=True)[:RECENT_CLOSED]
    return home


def inbox(consults: list[ConsultRequest], specialist: User) -> Inbox:
    """A specialist's consults: the specialty pool to triage, their own, and recently closed."""
    result = Inbox()
    for consult in consults:
        if consult.assigned_specialist_id is None:
            if consult.status in lifecycle.OPEN_TO_POOL:
                result.pool.append(consult)
        elif consult.assigned_specialist_id == specialist.id:
            if consult.status in lifecycle.CLOSED:
                result.closed.append(consult)
            else:
                result.mine.append(consult)
    result.pool = triage_order(result.pool)
    result.mine = triage_order(result.mine)
    result.closed = sorted(result.closed, key=_when, reverse=True)[:RECENT_CLOSED]
    return result
