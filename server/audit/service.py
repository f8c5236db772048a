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


def _payload(prev_hash: str, event: AuditEvent) -> bytes:
    return json.dumps(
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
    ).encode()


def _digest(prev_hash: str, event: AuditEvent, key: bytes) -> str:
    return hmac.new(key, _payload(prev_hash, event), hashlib.sha256).hexdigest()


def _legacy_digest(prev_hash: str, event: AuditEvent) -> str:
    """How events were hashed before the chain was keyed (first release): plain SHA-256.
    Such events verify only below a keyed adoption event (`adopt_legacy`)."""
    return hashlib.sha256(_payload(prev_hash, event)).hexdigest()


LEGACY_ADOPTED = "audit.legacy_adopted"


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
    # are already serialised by BEGIN IMMEDIATE (server.db). The head is read afresh:
    # a session kept across commits (expire_on_commit=False) still holds the head it
    # loaded then, and another writer may have appended since.
    head = session.exec(
        select(AuditHead)
        .where(AuditHead.id == 1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
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


def _adopted_prefix(events: list[AuditEvent], key: bytes) -> tuple[int, str]:
    """(seq, hash) of the last unkeyed event vouched for by a keyed adoption event, or
    (0, ""): the adoption event's HMAC binds that hash, so the prefix below it cannot be
    changed, and a chain recomputed without the key has no valid adoption event."""
    for event in events:
        if event.action != LEGACY_ADOPTED:
            continue
        if not hmac.compare_digest(_digest(event.prev_hash, event, key), event.hash):
            continue
        detail = json.loads(event.detail or "{}")
        up_to, last_hash = detail.get("up_to"), detail.get("hash")
        if isinstance(up_to, int) and isinstance(last_hash, str):
            return up_to, last_hash
    return 0, ""


def verify_events(
    events: Iterable[AuditEvent], head: AuditHead | None, key: bytes
) -> list[Problem]:
    problems: list[Problem] = []
    ordered = list(events)
    legacy_up_to, legacy_hash = _adopted_prefix(ordered, key)
    prev_hash, expected_seq = GENESIS, 1
    for event in ordered:
        if event.seq != expected_seq:
            problems.append(Problem(event.seq, f"expected event {expected_seq}: missing events"))
        if event.prev_hash != prev_hash:
            problems.append(Problem(event.seq, "does not follow the previous event"))
        keyed = hmac.compare_digest(_digest(event.prev_hash, event, key), event.hash)
        legacy = event.seq <= legacy_up_to and hmac.compare_digest(
            _legacy_digest(event.prev_hash, event), event.hash
        )
        if not (keyed or legacy):
            problems.append(Problem(event.seq, "contents changed after it was written"))
        if event.seq == legacy_up_to and event.hash != legacy_hash:
            problems.append(Problem(event.seq, "differs from the adopted first-release chain"))
        prev_hash, expected_seq = event.hash, event.seq + 1
    last_seq = expected_seq - 1
    if head is None:
        if last_seq:
            problems.append(Problem(last_seq, f"log has {last_seq} events but its head is gone"))
    elif head.seq != last_seq or (last_seq and head.hash != prev_hash):
        problems.append(Problem(head.seq, f"log ends at {last_seq} but its head says {head.seq}"))
    return problems


def adopt_legacy(session: Session) -> int:
    """After upgrading from the first release: check the events hashed without a key as
    that release did (an intact, unkeyed chain from the start), then vouch for them with
    one keyed event naming the last one. Returns how many were adopted (0: none to adopt).
    Raises ValueError if that prefix is not intact: nothing is vouched for then."""
    events = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    key = keying_for(session).key
    if _adopted_prefix(list(events), key)[0]:
        return 0
    prev_hash, last = GENESIS, None
    for event in events:
        if hmac.compare_digest(_digest(event.prev_hash, event, key), event.hash):
            break  # the keyed chain starts here
        intact = (
            event.seq == (last.seq + 1 if last else 1)
            and event.prev_hash == prev_hash
            and hmac.compare_digest(_legacy_digest(event.prev_hash, event), event.hash)
        )
        if not intact:
            raise ValueError(f"event {event.seq} is not part of an intact first-release chain")
        prev_hash, last = event.hash, event
    if last is None:
        return 0
    record(
        session,
        LEGACY_ADOPTED,
        actor_id=None,
        object_type="audit",
        detail={"up_to": last.seq, "hash": last.hash},
    )
    return last.seq


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
