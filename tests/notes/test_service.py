"""Service rules without HTTP, and the HTTP routes around the note."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from server import migrate
from server.accounts.models import Role
from server.audit.models import AuditEvent
from server.db import engine_for
from server.notes import service
from server.notes.errors import InvalidOperation, NoteFrozen, RevisionTooOld
from server.notes.models import NoteUpdate, SharedNote
from tests.factories import login, make_user
from tests.notes.factories import consult_with_pair


@pytest.fixture
def tx(database_url: str) -> Iterator[Session]:
    """A transactional session, as the app uses (the `db` fixture autocommits)."""
    with Session(engine_for(database_url), expire_on_commit=False) as session:
        yield session


def _apply(
    db: Session, consult_id: int, author: int, seq: int, rev: int, op: object
) -> dict[str, Any]:
    """Apply `op` as the client sent it (any JSON: the service validates it)."""
    applied = service.apply(
        db,
        consult_id,
        author_id=author,
        client_id="t1",
        client_seq=seq,
        base_revision=rev,
        op_json=op,
        max_chars=1000,
    )
    db.commit()
    return applied.record


def test_late_operation_is_transformed_and_log_plus_snapshot_agree(
    db: Session, tx: Session
) -> None:
    consult, gp, _ = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    _apply(tx, consult.id or 0, gp.id or 0, 1, 0, ["hello"])
    late = service.apply(
        db,
        consult.id or 0,
        author_id=gp.id or 0,
        client_id="t0",  # a lower client id than t1's: its insertion goes first on a tie
        client_seq=1,
        base_revision=0,
        op_json=["> "],
        max_chars=1000,
    )
    tx.commit()
    assert late.record["rev"] == 2 and late.record["op"] == ["> ", 5]
    note = db.exec(select(SharedNote).where(SharedNote.consult_id == consult.id)).one()
    assert service.current_text(db, note) == "> hello" and note.revision == 2
    ops = db.exec(select(NoteUpdate.op).where(NoteUpdate.note_id == note.id)).all()
    assert [json.loads(o) for o in ops] == [["hello"], ["> ", 5]]


def test_empty_operations_are_acknowledged_but_not_stored(db: Session, tx: Session) -> None:
    consult, gp, _ = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    _apply(tx, consult.id or 0, gp.id or 0, 1, 0, ["hello"])
    # A bare retain, and a delete of what someone else deleted meanwhile: both empty.
    assert _apply(tx, consult.id or 0, gp.id or 0, 2, 1, [5]) == {
        "type": "ack",
        "rev": 1,
        "seq": 2,
        "client": "t1",
    }
    _apply(tx, consult.id or 0, gp.id or 0, 3, 1, [4, -1])
    late = _apply(tx, consult.id or 0, gp.id or 0, 4, 1, [4, -1])
    assert late["type"] == "ack" and late["rev"] == 2
    note = db.exec(select(SharedNote).where(SharedNote.consult_id == consult.id)).one()
    assert service.current_text(db, note) == "hell" and note.revision == 2
    assert len(db.exec(select(NoteUpdate).where(NoteUpdate.note_id == note.id)).all()) == 2


def test_freeze_makes_the_note_read_only_but_still_acks_a_resend(db: Session, tx: Session) -> None:
    consult, gp, specialist = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    first = _apply(tx, consult.id or 0, gp.id or 0, 1, 0, ["plan"])
    service.freeze(tx, consult, actor_id=specialist.id)
    tx.commit()
    with pytest.raises(NoteFrozen):
        _apply(tx, consult.id or 0, gp.id or 0, 2, 1, [4, "!"])
    tx.rollback()
    assert _apply(tx, consult.id or 0, gp.id or 0, 1, 0, ["plan"]) == first  # duplicate
    assert service.final_text(tx, consult) == "plan"
    events = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "note.frozen", AuditEvent.object_id == consult.public_id
        )
    ).all()
    assert len(events) == 1
    service.freeze(tx, consult)  # idempotent: no second event
    tx.commit()
    assert (
        len(
            db.exec(
                select(AuditEvent).where(
                    AuditEvent.object_id == consult.public_id, AuditEvent.action == "note.frozen"
                )
            ).all()
        )
        == 1
    )


def test_bad_input_writes_nothing(db: Session, tx: Session) -> None:
    consult, gp, _ = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    for bad in ([3, "x"], "text", [0]):
        with pytest.raises(InvalidOperation):
            _apply(tx, consult.id or 0, gp.id or 0, 1, 0, bad)
        tx.rollback()
    with pytest.raises(InvalidOperation):
        _apply(tx, consult.id or 0, gp.id or 0, 1, 5, ["x"])  # revision from the future
    tx.rollback()
    assert service.state(tx, consult)["rev"] == 0


def test_compaction_keeps_the_snapshot_and_refuses_too_old_revisions(
    db: Session, tx: Session
) -> None:
    consult, gp, _ = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    for i in range(5):
        _apply(tx, consult.id or 0, gp.id or 0, i + 1, i, [i, "x"] if i else ["x"])
    removed = service.compact(tx, consult.id or 0, retention=timedelta(seconds=-1))
    tx.commit()
    assert removed == 5
    assert service.state(tx, consult) == {"rev": 5, "text": "xxxxx", "frozen": False}
    with pytest.raises(RevisionTooOld):
        _apply(tx, consult.id or 0, gp.id or 0, 9, 2, [2, "y"])
    tx.rollback()
    assert _apply(tx, consult.id or 0, gp.id or 0, 9, 5, [5, "y"])["rev"] == 6


def test_state_and_draft_routes_are_for_participants(
    client: TestClient, other_client: TestClient, db: Session, tx: Session
) -> None:
    consult, gp, specialist = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    _apply(tx, consult.id or 0, gp.id or 0, 1, 0, ["주호소: 흉통\n계획: 심전도"])
    login(client, specialist)
    base = f"/api/consults/{consult.public_id}/notes"
    assert client.get(base).json()["text"].startswith("주호소")
    assert client.get(f"{base}/draft").json()["text"] == "주호소: 흉통\n계획: 심전도"
    assert client.get(f"{base}/draft", params={"start": 0, "end": 3}).json()["text"] == "주호소"
    assert client.get(f"{base}/draft", params={"start": 5, "end": 2}).status_code == 422
    assert client.get(f"{base}/draft", params={"start": -1}).status_code == 422
    page = client.get(f"/consults/{consult.public_id}/notes", headers={"accept": "text/html"})
    assert page.status_code == 200 and "data-notes-consult" in page.text
    assert "<script>" not in page.text and "style=" not in page.text
    login(other_client, gp)
    assert other_client.get(base).status_code == 200
    assert other_client.get(f"{base}/draft").status_code == 404  # the GP does not write the report
    other_client.cookies.clear()
    login(other_client, make_user(db, Role.GP))
    assert other_client.get(base).status_code == 404
    assert other_client.get(f"/consults/{consult.public_id}/notes").status_code == 404


def test_migrations_match_the_models(database_url: str) -> None:
    migrate.check(database_url)
    assert col(SharedNote.text) is not None


def test_the_text_is_written_every_snapshot_every_revisions_and_loading_stays_bounded(
    db: Session, tx: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "SNAPSHOT_EVERY", 4)
    consult, gp, _ = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    for i in range(10):
        _apply(tx, consult.id or 0, gp.id or 0, i + 1, i, [i, str(i)] if i else ["0"])
    note = db.exec(select(SharedNote).where(SharedNote.consult_id == consult.id)).one()
    # The row holds the text at revision 8 only; revisions 9 and 10 are in the log.
    assert (note.revision, note.text_revision, note.text) == (10, 8, "01234567")
    assert service.current_text(db, note) == "0123456789"
    assert service.state(db, consult)["text"] == "0123456789"
    # A late operation (based on revision 5) is transformed against 6..10 and applied
    # to the current text, not to the snapshot.
    late = service.apply(
        tx,
        consult.id or 0,
        author_id=gp.id or 0,
        client_id="t0",
        client_seq=1,
        base_revision=5,
        op_json=[5, "-"],
        max_chars=1000,
    )
    tx.commit()
    assert late.record["rev"] == 11 and late.text == "01234-56789"
    # Compaction folds the log into the snapshot before dropping any row.
    assert service.compact(tx, consult.id or 0, retention=timedelta(seconds=-1)) == 11
    tx.commit()
    db.refresh(note)
    assert (note.text_revision, note.text) == (11, "01234-56789")
    assert service.state(db, consult)["text"] == "01234-56789"


def test_signing_writes_the_whole_text_to_the_row(
    db: Session, tx: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "SNAPSHOT_EVERY", 64)
    consult, gp, specialist = consult_with_pair(db)
    service.ensure_note(tx, consult.id or 0)
    tx.commit()
    _apply(tx, consult.id or 0, gp.id or 0, 1, 0, ["signed "])
    _apply(tx, consult.id or 0, gp.id or 0, 2, 1, [7, "text"])
    service.freeze(tx, consult, actor_id=specialist.id)
    tx.commit()
    note = db.exec(select(SharedNote).where(SharedNote.consult_id == consult.id)).one()
    assert (note.text, note.text_revision, note.revision) == ("signed text", 2, 2)
