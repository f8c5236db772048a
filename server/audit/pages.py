"""The administrators' audit log page (same filters and scope as GET /api/audit)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import col, select

from server.accounts.deps import AdminUser, client_ip
from server.accounts.models import User
from server.audit.router import AuditFilter, search_for_admin
from server.db import SessionDep
from web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/admin/audit")
def audit_page(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    filters: Annotated[AuditFilter, Query()],
) -> Response:
    """Filter and read the organisation's audit events."""
    events = search_for_admin(session, admin, filters, client_ip(request))
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    names = {
        u.id: u.name for u in session.exec(select(User).where(col(User.id).in_(actor_ids))).all()
    }
    older = filters.model_copy(update={"before_seq": events[-1].seq if events else None})
    return render(
        request,
        "audit/list.html",
        events=events,
        filters=filters,
        names=names,
        next_query=urlencode(older.model_dump(mode="json", exclude_none=True)),
    )
