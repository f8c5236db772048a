"""Appending to and verifying the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, or_, select

from server.accounts.models import User
from server.audit.models import AuditEvent, AuditHead
from server.clock import utcnow

GENESIS = "0" * 64


def _digest(prev_hash: str, event: AuditEvent) -> str:
    payload = json.dumps(
        [
            event.seq,
            event.at.isoformat(),
            event.actor_id,
            event.action,
            event.object_type,
            event.object_id,
            event.organisation_id,
            event.ip,
            event.detail,
            prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def record(
    session: Session,
    action: str,
    *,
    actor_id: int | None,
    ip: str = "",
    object_type: str = "",
    object_id: str | int = "",
    organisation_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction; it commits or rolls back with it."""
    # Locking the head row serialises appenders on PostgreSQL; SQLite transactions
    # are already serialised by BEGIN IMMEDIATE (server.db).
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    prev_hash = head.hash or GENESIS
    # Microseconds are dropped so the value hashes the same after a database round-trip.
    event = AuditEvent(
        seq=head.seq + 1,
        at=utcnow().replace(microsecond=0),
        actor_id=actor_id,
        action=action,
        # Cut to the columns' widths: a long value (a 300-character e-mail typed at
        # login) must not fail the insert and roll back the failed attempt with it.
        object_type=object_type[:40],
        object_id=str(object_id)[:64],
        organisation_id=organisation_id,
        ip=ip[:64],
        detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
        prev_hash=prev_hash,
        hash="",
    )
    event.hash = _digest(prev_hash, event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.add(head)
    session.flush()
    return event


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str


def verify(session: Session) -> list[Problem]:
    """Walk the chain; report changed, inserted or deleted events."""
    events = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    head = session.get(AuditHead, 1)
    return verify_events(events, head)


def verify_events(events: Iterable[AuditEvent], head: AuditHead | None) -> list[Problem]:
    problems: list[Problem] = []
    prev_hash, expected_seq = GENESIS, 1
    for event in events:
        if event.seq != expected_seq:
            problems.append(Problem(event.seq, f"expected event {expected_seq}: missing events"))
        if event.prev_hash != prev_hash:
            problems.append(Problem(event.seq, "does not follow the previous event"))
        if _digest(event.prev_hash, event) != event.hash:
            problems.append(Problem(event.seq, "contents changed after it was written"))
        prev_hash, expected_seq = event.hash, event.seq + 1
    last_seq = expected_seq - 1
    if head is not None and (head.seq != last_seq or (last_seq and head.hash != prev_hash)):
        problems.append(Problem(head.seq, f"log ends at {last_seq} but its head says {head.seq}"))
    return problems


def search(
    session: Session,
    *,
    action: str | None = None,
    actor_id: int | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    organisation_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_seq: int | None = None,
    scope_organisation_id: int | None = None,
) -> list[AuditEvent]:
    """Newest first, filtered; `before_seq` pages backwards. `scope_organisation_id`:
    only events about that organisation's records or done by its staff."""
    query = select(AuditEvent)
    if scope_organisation_id is not None:
        staff = select(User.id).where(User.organisation_id == scope_organisation_id)
        query = query.where(
            or_(
                col(AuditEvent.organisation_id) == scope_organisation_id,
                col(AuditEvent.actor_id).in_(staff),
            )
        )
    if action:
        query = query.where(col(AuditEvent.action).startswith(action))
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if object_id:
        query = query.where(AuditEvent.object_id == object_id)
    if organisation_id is not None:
        query = query.where(AuditEvent.organisation_id == organisation_id)
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    if until is not None:
        query = query.where(col(AuditEvent.at) < until)
    if before_seq is not None:
        query = query.where(col(AuditEvent.seq) < before_seq)
    query = query.order_by(col(AuditEvent.seq).desc()).limit(limit)
    return list(session.exec(query).all())
