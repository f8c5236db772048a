"""Loaders that fetch the consult and check access once: anyone else gets 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlmodel import select

from server.accounts.deps import CurrentUser
from server.consults import access
from server.consults.models import ConsultRequest
from server.db import SessionDep
from server.errors import NotFound


def _consult(session: SessionDep, public_id: str) -> ConsultRequest:
    consult = session.exec(
        select(ConsultRequest).where(ConsultRequest.public_id == public_id)
    ).first()
    if consult is None:
        raise NotFound("consult")
    return consult


def participant_consult(session: SessionDep, user: CurrentUser, public_id: str) -> ConsultRequest:
    consult = _consult(session, public_id)
    if not access.is_participant(user, consult):
        raise NotFound("consult")
    return consult


def assigned_consult(session: SessionDep, user: CurrentUser, public_id: str) -> ConsultRequest:
    """Only the consult's specialist starts the report from the note."""
    consult = _consult(session, public_id)
    if access.access_of(user, consult) != access.Access.ASSIGNED:
        raise NotFound("consult")
    return consult


ParticipantConsult = Annotated[ConsultRequest, Depends(participant_consult)]
AssignedConsult = Annotated[ConsultRequest, Depends(assigned_consult)]
