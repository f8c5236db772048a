"""Who may see a consult: decided here, in one place, for every route and WebSocket."""

from __future__ import annotations

from enum import StrEnum

from server.accounts.models import Role, User
from server.consults.models import ConsultRequest, ConsultStatus


class Access(StrEnum):
    NONE = "none"
    CLINIC = "clinic"  # a GP of the requesting organisation
    ASSIGNED = "assigned"  # the specialist who took the consult
    POOL = "pool"  # a specialist of the target specialty while nobody has taken it
    ADMIN = "admin"  # an administrator: allowed, always audited


# While unassigned, the specialty pool sees what triage needs (see consults docs).
OPEN_TO_POOL = {ConsultStatus.REQUESTED, ConsultStatus.ESCALATED}


def access_of(user: User, consult: ConsultRequest) -> Access:
    """The viewer's relation to the consult; Access.NONE means 404."""
    if user.role == Role.GP and user.organisation_id == consult.organisation_id:
        return Access.CLINIC
    if user.role == Role.SPECIALIST:
        if consult.assigned_specialist_id == user.id:
            return Access.ASSIGNED
        if (
            consult.assigned_specialist_id is None
            and consult.status in OPEN_TO_POOL
            and user.specialty_id == consult.specialty_id
        ):
            return Access.POOL
    if user.role == Role.ADMIN:
        return Access.ADMIN
    return Access.NONE


def is_participant(user: User, consult: ConsultRequest) -> bool:
    """May take part in the call and write the shared note."""
    return access_of(user, consult) in {Access.CLINIC, Access.ASSIGNED}
