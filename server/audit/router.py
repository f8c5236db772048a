"""Audit API for administrators: filter and read their organisation's events."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from server.accounts.deps import AdminUser, client_ip
from server.audit import service as audit
from server.audit.models import AuditEvent
from server.db import SessionDep
from server.validation import BodyId, EdgeDateTime

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    seq: int
    at: datetime
    actor_id: int | None
    action: str
    object_type: str
    object_id: str
    organisation_id: int | None
    ip: str
    detail: dict[str, Any]
    hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            seq=event.seq,
            at=event.at,
            actor_id=event.actor_id,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            organisation_id=event.organisation_id,
            ip=event.ip,
            detail=json.loads(event.detail or "{}"),
            hash=event.hash,
        )


class AuditFilter(BaseModel):
    action: str | None = None
    actor_id: BodyId | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: EdgeDateTime | None = None
    until: EdgeDateTime | None = None
    before_seq: BodyId | None = None
    limit: BodyId = 100


def search_for_admin(
    session: SessionDep, admin: AdminUser, filters: AuditFilter, ip: str
) -> list[AuditEvent]:
    """An administrator reads only their own organisation's events (about its records or
    done by its staff); reading is audited."""
    events = audit.search(
        session,
        action=filters.action or None,
        actor_id=filters.actor_id,
        object_type=filters.object_type or None,
        object_id=filters.object_id or None,
        scope_organisation_id=admin.organisation_id,
        since=filters.since,
        until=filters.until,
        before_seq=filters.before_seq,
        limit=max(1, min(filters.limit, 500)),
    )
    audit.record(
        session,
        "audit.read",
        actor_id=admin.id,
        ip=ip,
        object_type="audit",
        organisation_id=admin.organisation_id,
        detail=filters.model_dump(mode="json", exclude_none=True),
    )
    return events


@router.get("", response_model=list[AuditEventOut])
def list_events(
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    filters: Annotated[AuditFilter, Query()],
) -> list[AuditEventOut]:
    """Newest first; filter by action prefix, actor, object, time; page with before_seq."""
    events = search_for_admin(session, admin, filters, client_ip(request))
    return [AuditEventOut.of(event) for event in events]
