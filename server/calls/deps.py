"""Loading a consult for its call: one place that fetches it and checks the participant rule."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlmodel import select

from server.accounts.deps import CurrentUser
from server.consults import access
from server.consults.models import ConsultRequest
from server.db import SessionDep
from server.errors import NotFound


def consult_for_call(public_id: str, user: CurrentUser, session: SessionDep) -> ConsultRequest:
    """The consult if the user takes part in it; anyone else gets the same 404 as for no consult."""
    consult = session.exec(
        select(ConsultRequest).where(ConsultRequest.public_id == public_id)
    ).first()
    # Same answer for "absent" and "not yours": a stranger learns nothing about the id.
    if consult is None or not access.is_participant(user, consult):
        raise NotFound("consult")
    return consult


CallConsult = Annotated[ConsultRequest, Depends(consult_for_call)]
