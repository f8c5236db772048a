"""Who may see the equity view, and over which region."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from server.accounts.deps import CurrentUser
from server.accounts.models import Organisation, Role, User
from server.db import SessionDep
from server.errors import NotFound

VIEWER_ROLES = frozenset({Role.ADMIN, Role.REGION_AUTHORITY})


class EquityScope:
    """The viewer and the one region they are held to (None: every region)."""

    def __init__(self, user: User, region_id: int | None) -> None:
        self.user = user
        self.region_id = region_id

    def region_for(self, asked: int | None) -> int | None:
        """The region to show: an authority's own, whatever was asked; another is 404."""
        if self.region_id is None:
            return asked
        if asked is not None and asked != self.region_id:
            raise NotFound("region")
        return self.region_id


def equity_scope(user: CurrentUser, session: SessionDep) -> EquityScope:
    """Administrators see every region's aggregates; a regional authority only its own.

    Anyone else gets the same 404 as an unknown page: the view's existence is no secret,
    but there is nothing here for them.
    """
    if user.role not in VIEWER_ROLES:
        raise NotFound()
    if user.role == Role.REGION_AUTHORITY:
        organisation = session.get(Organisation, user.organisation_id)
        if organisation is None:
            raise NotFound()
        return EquityScope(user, organisation.region_id)
    return EquityScope(user, None)


EquityViewer = Annotated[EquityScope, Depends(equity_scope)]
