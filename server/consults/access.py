"""Who may see a consult: decided here, in one place, for every route and WebSocket."""

from __future__ import annotations

from enum import StrEnum

from server.accounts.models import Role, User
from server.consults.lifecycle import OPEN_TO_POOL
from server.consults.models import ConsultRequest


class Access(StrEnum):
    NONE = "none"
    CLINIC = "clinic"  # a GP of the requesting organisation
    ASSIGNED = "assigned"  # the specialist who took the consult
    POOL = "pool"  # a specialist of the target specialty while nobody has taken it
    ADMIN = "admin"  # an administrator: allowed, always audited


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


def is_participant(user: User, consult: ConsultRequest) -> bool:
    """May take part in the call and write the shared note."""
    return access_of(user, consult) in {Access.CLINIC, Access.ASSIGNED}


# Triage (see docs/consults.md): the pool sees the request and the list of attachments
# (kind, size), never their bytes, thumbnails, the messages or reports.
FULL_RECORD = {Access.CLINIC, Access.ASSIGNED, Access.ADMIN}


def sees_full_record(access: Access) -> bool:
    """May open attachments, thumbnails, messages, reports and exports."""
    return access in FULL_RECORD
