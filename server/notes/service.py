"""Rules of the shared note: apply, catch up, freeze, compact, excerpt (no HTTP, no sockets)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from server.audit import service as audit
from server.clock import utcnow
from server.consults.models import ConsultRequest
from server.errors import AppError
from server.notes.errors import (
    OT_REFUSED,
    InvalidOperation,
    NoteFrozen,
    NoteTooLong,
    RevisionTooOld,
)
from server.notes.models import NoteUpdate, SharedNote
from server.notes.ot import OTError, TextOperation, transform_against

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once
# The note's text is written to its row when the revision is a multiple of this (and when
# the log is compacted or the note signed); in between only the revision moves. Loading
# replays at most SNAPSHOT_EVERY - 1 small logged operations after the snapshot.
SNAPSHOT_EVERY = 64


@dataclass(frozen=True)
class Applied:
    """An acknowledged update as every client receives it; `duplicate` for a resend.

    A record of type "ack" (an operation that turned out empty) is for its author only.
    """

    record: dict[str, Any]
    duplicate: bool
    # The note's text at `record["rev"]` when known (not for a resend's old record).
    text: str | None = None


def record_of(update: NoteUpdate) -> dict[str, Any]:
    return {
        "type": "op",
        "rev": update.revision,
        "op": json.loads(update.op),
        "client": update.client_id,
        "seq": update.client_seq,
        "author": update.author_id,
    }


def find_note(session: Session, consult_id: int, *, lock: bool = False) -> SharedNote | None:
    query = select(SharedNote).where(SharedNote.consult_id == consult_id)
    if lock:
        # Serialises writers of one note on PostgreSQL; SQLite already serialises all
        # writers with BEGIN IMMEDIATE (server.db). Read afresh: a row this session
        # loaded before may have changed since (as audit.record's head).
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.exec(query).first()


def ensure_note(session: Session, consult_id: int) -> SharedNote:
    """The consult's note, created empty on first use (safe when two people open it at once).

    INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL) rather than a savepoint:
    the loser of a race simply finds the winner's row, and no savepoint is needed, so it
    also works on a connection outside a transaction block.
    """
    note = find_note(session, consult_id)
    if note is not None:
        return note
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(SharedNote)
        .values(
            consult_id=consult_id,
            text="",
            revision=0,
            compacted_revision=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["consult_id"])
    )
    note = find_note(session, consult_id)
    if note is None:  # pragma: no cover - the unique row must exist after the insert
        raise RuntimeError(f"shared note for consult {consult_id} vanished")
    return note


def current_text(session: Session, note: SharedNote) -> str:
    """The text at `note.revision`: the snapshot plus the few updates logged after it."""
    if note.text_revision >= note.revision:
        return note.text
    rows = (
        session.connection()
        .execute(_OPS_AFTER, {"note": note.id, "after": note.text_revision})
        .all()
    )
    return _replay(note.text, (raw for _, raw in rows))


def _replay(text: str, raws: Iterable[str]) -> str:
    for raw in raws:
        text = TextOperation.from_json(json.loads(raw)).apply(text)
    return text


def state(session: Session, consult: ConsultRequest) -> dict[str, Any]:
    """The note a client starts from: one row and fewer than SNAPSHOT_EVERY log rows read,
    however long the note's history."""
    note = find_note(session, consult.id or 0)
    if note is None:
        return {"rev": 0, "text": "", "frozen": consult.report_signed_at is not None}
    text = current_text(session, note)
    return {"rev": note.revision, "text": text, "frozen": note.frozen_at is not None}


_notes, _updates = SharedNote.__table__, NoteUpdate.__table__  # type: ignore[attr-defined]
_NOTE = core_select(
    _notes.c.id,
    _notes.c.text,
    _notes.c.text_revision,
    _notes.c.revision,
    _notes.c.compacted_revision,
    _notes.c.frozen_at,
).where(_notes.c.consult_id == bindparam("consult"))
# Serialises writers of one note on PostgreSQL; SQLite serialises all writers (BEGIN IMMEDIATE).
_NOTE_FOR_UPDATE = _NOTE.with_for_update()
_LATE = (
    core_select(
        _updates.c.revision,
        _updates.c.client_id,
        _updates.c.client_seq,
        _updates.c.op,
        _updates.c.author_id,
    )
    .where(_updates.c.note_id == bindparam("note"), _updates.c.revision > bindparam("base"))
    .order_by(_updates.c.revision)
)
_OPS_AFTER = (
    core_select(_updates.c.revision, _updates.c.op)
    .where(_updates.c.note_id == bindparam("note"), _updates.c.revision > bindparam("after"))
    .order_by(_updates.c.revision)
)
_SET_REVISION = (
    update(_notes)
    .where(_notes.c.id == bindparam("note"))
    .values(revision=bindparam("revision"), updated_at=bindparam("now"))
)
_SET_NOTE = _SET_REVISION.values(text=bindparam("text"), text_revision=bindparam("revision"))
_ADD_UPDATE = insert(_updates)


def apply(
    session: Session,
    consult_id: int,
    *,
    author_id: int,
    client_id: str,
    client_seq: int,
    base_revision: int,
    op_json: Any,
    max_chars: int,
) -> Applied:
    """Transform a client's operation past what it has not seen, store it, return the update.

    The row and the new revision (and, every SNAPSHOT_EVERY revisions, the text) are
    written in the caller's transaction, which must commit before anyone is told: an
    acknowledged update is always on disk.
    """
    op = _parse(client_id, client_seq, base_revision, op_json, max_chars)
    # The hot path of every keystroke: statements built once (below), on the session's
    # connection (no ORM unit of work), and no log query when the client is up to date.
    connection = session.connection()
    locking = connection.dialect.name == "postgresql"
    row = connection.execute(
        _NOTE_FOR_UPDATE if locking else _NOTE, {"consult": consult_id}
    ).first()
    if row is None:
        raise InvalidOperation("the note does not exist yet; join first")
    note_id, snapshot, text_revision, revision, compacted, frozen_at = row
    # One log query serves both the transform (updates after the client's base) and the
    # current text (updates after the snapshot's revision).
    since = min(base_revision, text_revision)
    logged: Sequence[Any] = ()
    if since < revision:
        logged = connection.execute(_LATE, {"note": note_id, "base": since}).all()
    late = [entry for entry in logged if entry[0] > base_revision]
    # A resend of a stored operation was stored after its base: it is among these.
    for rev, other, seq, raw, author in late:
        if other == client_id and seq == client_seq:
            record = _record(rev, json.loads(raw), other, seq, author)
            return Applied(record, duplicate=True)
    if frozen_at is not None:
        raise NoteFrozen()
    if base_revision > revision:
        raise InvalidOperation(
            "revision %(base)s is ahead of the note (%(revision)s)",
            params={"base": base_revision, "revision": revision},
        )
    if base_revision < compacted:
        raise RevisionTooOld(compacted)
    current = _replay(snapshot, (entry[3] for entry in logged if entry[0] > text_revision))
    try:
        op = transform_against(
            op,
            client_id,
            ((other, TextOperation.from_json(json.loads(raw))) for _, other, _, raw, _ in late),
        )
        text = op.apply(current)
    except OTError as error:
        raise InvalidOperation(OT_REFUSED, detail=str(error)) from error
    if len(text) > max_chars and len(text) > len(current):
        raise NoteTooLong(max_chars)
    if op.is_noop():
        # Nothing changes (e.g. both deleted the same word): no revision is stored; the
        # author is told its operation is done as of the current revision.
        return Applied(
            {"type": "ack", "rev": revision, "seq": client_seq, "client": client_id},
            duplicate=False,
            text=current,
        )
    now = utcnow()
    components = op.to_json()
    # (A parameter named like a column becomes a SET: "text" goes only with _SET_NOTE.)
    moved = {"note": note_id, "revision": revision + 1, "now": now}
    if (revision + 1) % SNAPSHOT_EVERY == 0:
        connection.execute(_SET_NOTE, {**moved, "text": text})
    else:
        connection.execute(_SET_REVISION, moved)
    connection.execute(
        _ADD_UPDATE,
        {
            "note_id": note_id,
            "revision": revision + 1,
            "author_id": author_id,
            "client_id": client_id,
            "client_seq": client_seq,
            "op": _ENCODER.encode(components),
            "created_at": now,
        },
    )
    return Applied(_record(revision + 1, components, client_id, client_seq, author_id), False, text)


def _parse(
    client_id: str, client_seq: int, base_revision: int, op_json: Any, max_chars: int
) -> TextOperation:
    if not CLIENT_ID.match(client_id) or client_seq < 1 or base_revision < 0:
        raise InvalidOperation("client id, sequence number or revision is invalid")
    try:
        return TextOperation.from_json(op_json, max_insert=max_chars)
    except OTError as error:
        raise InvalidOperation(OT_REFUSED, detail=str(error)) from error


# The fast path, when the client is up to date with the text this process last saw:
# the update is written only if the note is still at that revision (and not signed).
# The statements are plain SQL for the driver itself (server/notes/gate.py runs them on
# its own connections): nothing is built or compiled per keystroke. The text goes along
# only when the new revision is a snapshot's (SNAPSHOT_EVERY).
_FAST_INSERT = (
    "INSERT INTO note_update (note_id, revision, author_id, client_id, client_seq, op, created_at)"
)
_FAST_WHERE = " WHERE id = %(note)s AND revision = %(rev)s AND frozen_at IS NULL"
# PostgreSQL: one statement, so in autocommit one round trip, commit included.
FAST_POSTGRESQL = (
    "WITH moved AS (UPDATE shared_note SET revision = %(next)s, updated_at = %(now)s"
    f"{_FAST_WHERE} RETURNING id) {_FAST_INSERT} SELECT id, %(next)s, %(author)s,"
    " %(client)s, %(seq)s, %(op)s, %(now)s FROM moved"
)
FAST_POSTGRESQL_SNAPSHOT = FAST_POSTGRESQL.replace(
    "SET revision", "SET text = %(text)s, text_revision = %(next)s, revision"
)
# SQLite: two statements in one transaction (the caller's BEGIN IMMEDIATE ... COMMIT).
FAST_SQLITE_MOVE = (
    "UPDATE shared_note SET revision = :next, updated_at = :now"
    + _FAST_WHERE.replace("%(", ":").replace(")s", "")
)
FAST_SQLITE_MOVE_SNAPSHOT = FAST_SQLITE_MOVE.replace(
    "SET revision", "SET text = :text, text_revision = :next, revision"
)
FAST_SQLITE_INSERT = f"{_FAST_INSERT} VALUES (:note, :next, :author, :client, :seq, :op, :now)"


@dataclass(frozen=True)
class FastWrite:
    """One keystroke on the fast path, computed before any I/O: what to write, and the
    update every client receives once it is committed."""

    applied: Applied
    snapshot: bool  # the new revision is a snapshot's: the text is written too
    params: dict[str, Any]  # for the FAST_* statements; "now" is naive UTC (UTCDateTime)

    @property
    def postgresql(self) -> str:
        return FAST_POSTGRESQL_SNAPSHOT if self.snapshot else FAST_POSTGRESQL

    @property
    def sqlite_move(self) -> str:
        return FAST_SQLITE_MOVE_SNAPSHOT if self.snapshot else FAST_SQLITE_MOVE


def prepare_known(
    note_id: int,
    known: tuple[int, str],
    *,
    author_id: int,
    client_id: str,
    client_seq: int,
    base_revision: int,
    op_json: Any,
    max_chars: int,
) -> FastWrite | None:
    """`apply` for a client at `known` = (revision, text), the note as this process last
    wrote or read it, up to the write: None when the general path must answer (the client
    is behind, or the operation is empty). The write (FAST_*) is conditional on the note
    still being at that revision and not signed; if it changes no row, nothing was
    written and the caller falls back to `apply`. Invalid input raises as `apply` does."""
    revision, current = known
    if base_revision != revision:
        return None
    op = _parse(client_id, client_seq, base_revision, op_json, max_chars)
    try:
        new_text = op.apply(current)
    except OTError as error:
        raise InvalidOperation(OT_REFUSED, detail=str(error)) from error
    if len(new_text) > max_chars and len(new_text) > len(current):
        raise NoteTooLong(max_chars)
    if op.is_noop():
        return None  # rare: the general path answers it
    components = op.to_json()
    params = {
        "note": note_id,
        "rev": revision,
        "next": revision + 1,
        "text": new_text,
        "now": utcnow().replace(tzinfo=None),
        "author": author_id,
        "client": client_id,
        "seq": client_seq,
        "op": _ENCODER.encode(components),
    }
    record = _record(revision + 1, components, client_id, client_seq, author_id)
    snapshot = (revision + 1) % SNAPSHOT_EVERY == 0
    return FastWrite(Applied(record, False, new_text), snapshot, params)


def _record(revision: int, op: Any, client_id: str, seq: int, author_id: int) -> dict[str, Any]:
    return {
        "type": "op",
        "rev": revision,
        "op": op,
        "client": client_id,
        "seq": seq,
        "author": author_id,
    }


def updates_between(
    session: Session, consult_id: int, after: int, upto: int | None = None
) -> list[dict[str, Any]]:
    """Acknowledged updates with after < revision <= upto, in order (a reconnect's catch-up)."""
    note = find_note(session, consult_id)
    if note is None:
        return []
    if after < note.compacted_revision:
        raise RevisionTooOld(note.compacted_revision)
    query = select(NoteUpdate).where(
        NoteUpdate.note_id == note.id, col(NoteUpdate.revision) > after
    )
    if upto is not None:
        query = query.where(col(NoteUpdate.revision) <= upto)
    return [record_of(u) for u in session.exec(query.order_by(col(NoteUpdate.revision))).all()]


def freeze(session: Session, consult: ConsultRequest, *, actor_id: int | None = None) -> SharedNote:
    """Make the note read-only for good (called when the report is signed); idempotent.

    The signed text is written whole to the note's row (the snapshot at its revision)."""
    note = ensure_note(session, consult.id or 0)
    locked = find_note(session, consult.id or 0, lock=True)
    note = locked or note
    if note.frozen_at is None:
        _fold(session, note)
        note.frozen_at = utcnow()
        session.add(note)
        audit.record(
            session,
            "note.frozen",
            actor_id=actor_id,
            object_type="consult",
            object_id=consult.public_id,
            organisation_id=consult.organisation_id,
            detail={"revision": note.revision, "chars": len(note.text)},
        )
        session.flush()
    return note


def _fold(session: Session, note: SharedNote) -> None:
    """Bring the snapshot up to the note's revision (the caller holds the note's lock)."""
    if note.text_revision < note.revision:
        note.text = current_text(session, note)
        note.text_revision = note.revision
        session.add(note)


def final_text(session: Session, consult: ConsultRequest) -> str:
    """The note as it stands (after signing: as it was signed), for the exported record."""
    return str(state(session, consult)["text"])


def excerpt(session: Session, consult: ConsultRequest, start: int | None, end: int | None) -> str:
    """All of the note, or the selection [start, end) in code points, to start a report draft."""
    text = final_text(session, consult)
    lo = 0 if start is None else start
    hi = len(text) if end is None else end
    if not 0 <= lo <= hi <= len(text):
        raise AppError(
            "invalid_selection",
            "selection must lie within 0..%(length)s",
            422,
            params={"length": len(text)},
        )
    return text[lo:hi]


def compact(session: Session, consult_id: int, *, retention: timedelta) -> int:
    """Drop log rows older than the retention (folded into the snapshot first); returns count."""
    note = find_note(session, consult_id, lock=True)
    if note is None:
        return 0
    cutoff = utcnow() - retention
    upto = session.exec(
        select(func.max(NoteUpdate.revision)).where(
            NoteUpdate.note_id == note.id, col(NoteUpdate.created_at) < cutoff
        )
    ).first()
    if not upto:
        return 0
    # Rows after the snapshot are part of the text: fold them in before any is dropped.
    _fold(session, note)
    result = session.execute(
        delete(NoteUpdate).where(
            col(NoteUpdate.note_id) == note.id, col(NoteUpdate.revision) <= upto
        )
    )
    note.compacted_revision = max(note.compacted_revision, int(upto))
    session.add(note)
    session.flush()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
