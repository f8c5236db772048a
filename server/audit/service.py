"""Appending to and verifying the hash-chained audit log.

The chain is keyed: each event's hash is an HMAC under a key the database does not
hold (derived from the app's secret key, or DARI_AUDIT_KEY), so someone who can edit
the tables cannot recompute a chain that verifies. After every commit that appended
events, a signed checkpoint (count, last hash, time) is appended to a file outside the
database (and, if configured, to syslog): deleting the newest events and moving the
head back, or deleting the head, disagrees with the checkpoints. docs/security.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import syslog
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, or_, select

from server.accounts.models import User
from server.audit.models import AuditEvent, AuditHead
from server.clock import utcnow

GENESIS = "0" * 64
AUDIT_PURPOSE = b"dari-audit-chain-v1"
log = logging.getLogger("dari.audit")


@dataclass(frozen=True)
class Keying:
    """How one database's chain is keyed and where its checkpoints go."""

    key: bytes
    checkpoints: Path | None = None
    syslog: bool = False


_keyings: dict[str, Keying] = {}


def derive_key(secret: str) -> bytes:
    """The chain's key, of its own: never usable as a CSRF or join-token key."""
    return hmac.new(secret.encode(), AUDIT_PURPOSE, hashlib.sha256).digest()


def configure(
    database_url: str, secret: str, checkpoints: Path | None = None, to_syslog: bool = False
) -> Keying:
    """Key the chain of this database (the app and `dari audit verify` call it)."""
    keying = Keying(derive_key(secret), checkpoints, to_syslog)
    _keyings[database_url] = keying
    return keying


def keying_for(session: Session) -> Keying:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    url = engine.url.render_as_string(hide_password=False)
    keying = _keyings.get(url)
    if keying is None:
        # Not configured by the app or the command (a script, a test's scratch
        # database): the deployment's own secret, from the environment or var/.
        from server.settings import get_settings

        settings = get_settings()
        keying = configure(
            url,
            settings.resolved_audit_key(),
            settings.resolved_audit_checkpoints(),
            settings.audit_syslog,
        )
    return keying


def _digest(prev_hash: str, event: AuditEvent, key: bytes) -> str:
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
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


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
    keying = keying_for(session)
    event.hash = _digest(prev_hash, event, keying.key)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.add(head)
    session.flush()
    # Written once the transaction commits (a rolled-back event must leave no trace).
    session.info["audit_checkpoint"] = (keying, event.seq, event.hash)
    return event


# --- checkpoints outside the database -------------------------------------------------


def _signature(key: bytes, seq: int, last_hash: str, at: str) -> str:
    return hmac.new(key, f"checkpoint:{seq}:{last_hash}:{at}".encode(), hashlib.sha256).hexdigest()


def write_checkpoint(keying: Keying, seq: int, last_hash: str, at: datetime) -> None:
    """Append one signed line: the log had `seq` events ending in `last_hash` at `at`."""
    stamp = at.isoformat(timespec="seconds")
    line = json.dumps(
        {
            "seq": seq,
            "hash": last_hash,
            "at": stamp,
            "sig": _signature(keying.key, seq, last_hash, stamp),
        },
        separators=(",", ":"),
    )
    if keying.checkpoints is not None:
        keying.checkpoints.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: lines of several processes never overwrite one another.
        fd = os.open(keying.checkpoints, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    if keying.syslog:
        syslog.syslog(syslog.LOG_INFO | syslog.LOG_AUTH, f"dari-audit {line}")


@sa_event.listens_for(OrmSession, "after_commit")
def _checkpoint_after_commit(session: OrmSession) -> None:
    pending = session.info.pop("audit_checkpoint", None)
    if pending is None:
        return
    keying, seq, last_hash = pending
    try:
        write_checkpoint(keying, seq, last_hash, utcnow())
    except OSError:
        # The event is stored; a missing checkpoint weakens only truncation checks.
        log.exception("could not append the audit checkpoint")


@sa_event.listens_for(OrmSession, "after_rollback")
def _no_checkpoint_after_rollback(session: OrmSession) -> None:
    session.info.pop("audit_checkpoint", None)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    signed: bool


def read_checkpoints(keying: Keying) -> list[Checkpoint]:
    if keying.checkpoints is None or not keying.checkpoints.exists():
        return []
    found = []
    for raw in keying.checkpoints.read_text().splitlines():
        try:
            data = json.loads(raw)
            seq, last_hash, at, sig = (
                int(data["seq"]),
                str(data["hash"]),
                str(data["at"]),
                str(data["sig"]),
            )
        except (ValueError, KeyError, TypeError):
            found.append(Checkpoint(0, "", "", False))
            continue
        signed = hmac.compare_digest(_signature(keying.key, seq, last_hash, at), sig)
        found.append(Checkpoint(seq, last_hash, at, signed))
    return found


@dataclass(frozen=True)
class Problem:
    seq: int
    message: str


def verify(session: Session) -> list[Problem]:
    """Walk the chain; report changed, inserted or deleted events, a missing or moved
    head, and any disagreement with the checkpoints kept outside the database."""
    events = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    head = session.get(AuditHead, 1)
    keying = keying_for(session)
    problems = verify_events(events, head, keying.key)
    problems.extend(verify_checkpoints(events, read_checkpoints(keying)))
    return problems


def verify_events(
    events: Iterable[AuditEvent], head: AuditHead | None, key: bytes
) -> list[Problem]:
    problems: list[Problem] = []
    prev_hash, expected_seq = GENESIS, 1
    for event in events:
        if event.seq != expected_seq:
            problems.append(Problem(event.seq, f"expected event {expected_seq}: missing events"))
        if event.prev_hash != prev_hash:
            problems.append(Problem(event.seq, "does not follow the previous event"))
        if not hmac.compare_digest(_digest(event.prev_hash, event, key), event.hash):
            problems.append(Problem(event.seq, "contents changed after it was written"))
        prev_hash, expected_seq = event.hash, event.seq + 1
    last_seq = expected_seq - 1
    if head is None:
        if last_seq:
            problems.append(Problem(last_seq, f"log has {last_seq} events but its head is gone"))
    elif head.seq != last_seq or (last_seq and head.hash != prev_hash):
        problems.append(Problem(head.seq, f"log ends at {last_seq} but its head says {head.seq}"))
    return problems


def verify_checkpoints(
    events: Iterable[AuditEvent], checkpoints: list[Checkpoint]
) -> list[Problem]:
    """Every signed checkpoint must name an event that is still there, unchanged."""
    problems: list[Problem] = []
    by_seq = {event.seq: event.hash for event in events}
    last_seq = max(by_seq, default=0)
    for checkpoint in checkpoints:
        if not checkpoint.signed:
            problems.append(Problem(checkpoint.seq, "a checkpoint line is not signed by our key"))
            continue
        if checkpoint.seq > last_seq:
            problems.append(
                Problem(
                    checkpoint.seq,
                    f"log ends at {last_seq} but a checkpoint of {checkpoint.at} "
                    f"counted {checkpoint.seq} events (truncated)",
                )
            )
        elif by_seq.get(checkpoint.seq) != checkpoint.hash:
            problems.append(
                Problem(
                    checkpoint.seq,
                    f"event {checkpoint.seq} differs from the checkpoint of {checkpoint.at} "
                    "(the chain was rewritten)",
                )
            )
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
