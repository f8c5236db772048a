"""Who may see a consult: decided here, in one place, for every route, page, service and
WebSocket. `load_consult` is the one loader; `server.consults.deps` wraps it for routes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session, select

from server.accounts.models import Role, User
from server.consults.errors import ConsultNotFound
from server.consults.lifecycle import OPEN_TO_POOL
from server.consults.models import ConsultRequest


class Access(StrEnum):
    NONE = "none"
    CLINIC = "clinic"  # a GP of the requesting organisation
    ASSIGNED = "assigned"  # the specialist who took the consult
    POOL = "pool"  # a specialist of the target specialty while nobody has taken it
    ADMIN = "admin"  # an administrator: allowed, always audited


class Need(StrEnum):
    """What a caller requires of the viewer; anyone short of it gets the 404 of no consult."""

    VISIBLE = "visible"  # any access at all (the pool's triage view and administrators too)
    PARTICIPANT = "participant"  # the requesting clinic or the assigned specialist (calls, notes)
    ASSIGNED = "assigned"  # the assigned specialist only
    CLINIC = "clinic"  # the requesting clinic's GPs only


GRANTED: dict[Need, frozenset[Access]] = {
    Need.VISIBLE: frozenset(Access) - {Access.NONE},
    Need.PARTICIPANT: frozenset({Access.CLINIC, Access.ASSIGNED}),
    Need.ASSIGNED: frozenset({Access.ASSIGNED}),
    Need.CLINIC: frozenset({Access.CLINIC}),
}


def access_of(user: User, consult: ConsultRequest) -> Access:
    """The viewer's relation to the consult; Access.NONE means 404."""
    if user.role == Role.GP and user.organisation_id == consult.organisation_id:
        return Access.CLINIC
    if user.role == Role.SPECIALIST:
        if consult.assigned_specialist_id == user.id:
            return Access.ASSIGNED
        # While unassigned, the specialty pool sees what triage needs (see consults docs).
        if (
            consult.assigned_specialist_id is None
            and consult.status in OPEN_TO_POOL
            and user.specialty_id == consult.specialty_id
        ):
            return Access.POOL
    if user.role == Role.ADMIN and user.organisation_id in (
        consult.organisation_id,
        consult.assigned_organisation_id,
    ):
        # Administrators of the requesting clinic or of the assigned specialist's
        # hospital; every read they make is audited with access "admin".
        return Access.ADMIN
    return Access.NONE


def grants(access: Access, need: Need) -> bool:
    """Whether this relation to the consult is enough for what the caller needs."""
    return access in GRANTED[need]


@dataclass
class Viewing:
    """A consult as one user may see it, with their relation to it."""

    consult: ConsultRequest
    access: Access
    user: User
    ip: str = ""


def find_consult(session: Session, public_id: str, *, lock: bool = False) -> ConsultRequest | None:
    """The consult by its public id, with no access check: for callers that decided access
    already (signaling records a join after admission). `lock` takes the row lock
    (PostgreSQL; SQLite serialises writers anyway)."""
    query = select(ConsultRequest).where(ConsultRequest.public_id == public_id)
    if lock:
        # Read afresh, not the copy this session may have loaded before the lock.
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.exec(query).first()


def load_consult(
    session: Session,
    user: User,
    public_id: str,
    *,
    need: Need = Need.VISIBLE,
    ip: str = "",
    lock: bool = False,
) -> Viewing:
    """The consult if this user may see it as `need` requires; otherwise the same 404 as
    for an unknown id (never 403: ids leak nothing). A refusal of an existing consult is
    audited as "consult.denied" (by the error handler); reads are audited by the
    services that show the record."""
    consult = find_consult(session, public_id, lock=lock)
    if consult is None:
        raise ConsultNotFound()
    access = access_of(user, consult)
    if not grants(access, need):
        refused = ConsultNotFound()
        # The outsider gets the same 404 as for an unknown id; the consult's organisation
        # sees the attempt in its audit log (written after the request rolls back).
        refused.audit_denied = {
            "action": "consult.denied",
            "actor_id": user.id,
            "object_type": "consult",
            "object_id": consult.public_id,
            "organisation_id": consult.organisation_id,
            "need": need.value,
        }
        raise refused
    return Viewing(consult, access, user, ip)


# Triage (see docs/consults.md): the pool sees the request and the list of attachments
# (kind, size), never their bytes, thumbnails, the messages or reports.
FULL_RECORD = {Access.CLINIC, Access.ASSIGNED, Access.ADMIN}


def sees_full_record(access: Access) -> bool:
    """May open attachments, thumbnails, messages, reports and exports."""
    return access in FULL_RECORD
