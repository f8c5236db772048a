"""Where consults meet the other domains: the shared note frozen into the signed record,
the booked appointment in the FHIR bundle."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from sqlmodel import Session, select

from server.audit.models import AuditEvent
from server.consults import export, reports
from server.consults.access import Access, Viewing
from server.consults.models import ConsultMode, ConsultStatus
from server.consults.schemas import ReportIn
from server.db import engine_for
from server.notes import service as notes
from server.notes.errors import NoteFrozen
from server.scheduling import booking, rosters, search
from tests.consults.helpers import make_consult, make_team, resources
from tests.factories import login
from tests.scheduling.factories import every_day, future_day

NOTE = "BP 150/90 twice; 가슴 통증 on stairs"
HTML = {"Accept": "text/html"}


def write_note(db: Session, consult_id: int, author_id: int, seq: int, text: str) -> None:
    note = notes.ensure_note(db, consult_id)
    notes.apply(
        db,
        consult_id,
        author_id=author_id,
        client_id="wiring",
        client_seq=seq,
        base_revision=note.revision,
        op_json=[len(note.text), text] if note.text else [text],
        max_chars=10_000,
    )
    db.commit()


def shared_notes(bundle: Bundle) -> list[str]:
    """The text of every shared-note DocumentReference in the bundle."""
    found = []
    for resource in resources(bundle, DocumentReference):
        if not any(i.system == "urn:dari:shared-note" for i in resource.identifier or []):
            continue
        for content in resource.content:
            # fhir.resources hands base64Binary back decoded (bytes).
            data = content.attachment.data
            assert data is not None
            found.append(data.decode("utf-8"))
    return found


def test_signing_freezes_the_note_and_exports_it(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    write_note(db, consult.id or 0, team.gp.id or 0, 1, NOTE)
    viewing = Viewing(consult, Access.ASSIGNED, team.specialist)
    reports.save_draft(db, viewing, ReportIn(findings="Stable angina"))
    reports.sign(db, viewing)
    db.commit()
    # The note is read-only now: an edit through the notes service is refused.
    with pytest.raises(NoteFrozen):
        write_note(db, consult.id or 0, team.gp.id or 0, 2, " and more")
    db.rollback()
    assert notes.final_text(db, consult) == NOTE
    assert notes.state(db, consult)["frozen"] is True
    frozen = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "note.frozen", AuditEvent.object_id == consult.public_id
        )
    ).all()
    assert len(frozen) == 1 and frozen[0].actor_id == team.specialist.id
    # An amendment signs again; freezing stays idempotent (one audit event).
    reports.amend(db, viewing, "typo")
    reports.sign(db, viewing)
    db.commit()
    assert (
        len(
            db.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "note.frozen", AuditEvent.object_id == consult.public_id
                )
            ).all()
        )
        == 1
    )
    bundle = Bundle.model_validate_json(json.dumps(export.build_bundle(db, consult)))
    assert shared_notes(bundle) == [NOTE]
    (document,) = [d for d in resources(bundle, DocumentReference) if d.docStatus == "final"]
    assert (document.content[0].attachment.contentType or "").startswith("text/plain")
    raw = json.dumps(export.build_bundle(db, consult))
    assert base64.b64encode(NOTE.encode()).decode() in raw  # base64 on the wire


def test_unsigned_consult_without_note_exports_no_note(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    bundle = Bundle.model_validate_json(json.dumps(export.build_bundle(db, consult)))
    assert shared_notes(bundle) == []
    write_note(db, consult.id or 0, team.gp.id or 0, 1, "draft thoughts")
    bundle = Bundle.model_validate_json(json.dumps(export.build_bundle(db, consult)))
    assert shared_notes(bundle) == ["draft thoughts"]
    assert notes.state(db, consult)["frozen"] is False  # only signing freezes


def test_signing_through_the_page_freezes_and_prints_the_note(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    write_note(db, consult.id or 0, team.gp.id or 0, 1, NOTE)
    base = f"/consults/{consult.public_id}"
    login(other_client, team.specialist)
    signed = other_client.post(
        f"{base}/report",
        data={"findings": "Sinus rhythm", "action": "sign"},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    login(client, team.gp)
    page = client.get(f"{base}/print?lang=en", headers=HTML)
    assert page.status_code == 200
    assert "Shared notes" in page.text and "BP 150/90 twice; 가슴 통증 on stairs" in page.text
    ko = client.get(f"{base}/print?lang=ko", headers=HTML).text
    assert "보고서 서명 시점의 내용입니다." in ko
    fhir = client.get(f"/api/consults/{consult.public_id}/fhir")
    assert fhir.status_code == 200
    assert shared_notes(Bundle.model_validate_json(fhir.text)) == [NOTE]
    # The live editor's route refuses the edit as well.
    db.expire_all()
    with pytest.raises(NoteFrozen):
        write_note(db, consult.id or 0, team.gp.id or 0, 2, "late")


def test_booked_consult_bundle_has_its_appointment(db: Session, database_url: str) -> None:
    team = make_team(db)
    every_day(db, team.specialist)
    consult = make_consult(db, team, ConsultStatus.REQUESTED, mode=ConsultMode.VIDEO)
    start, end = rosters.local_day_bounds(future_day(), rosters.zone("Asia/Seoul"))
    slots = search.search_slots(
        db, specialty_id=team.specialty.id or 0, start=start, end=end, home_region_id=None
    )
    slot = slots[0]
    # Booking uses a savepoint: a transactional session, as the app's requests have.
    with Session(engine_for(database_url), expire_on_commit=False) as tx:
        appointment = booking.book(
            tx, team.gp, tx.merge(consult), team.specialist.id or 0, slot.starts_at
        )
        tx.commit()
    db.refresh(consult)
    data = export.build_bundle(db, consult)
    bundle = Bundle.model_validate_json(json.dumps(data))
    (booked,) = resources(bundle, Appointment)
    assert booked.status == "booked"
    assert booked.start == appointment.starts_at == slot.starts_at
    assert booked.end == appointment.ends_at == slot.ends_at
    assert isinstance(booked.start, datetime) and booked.end > booked.start
    actors = {p.actor.reference if p.actor else None for p in booked.participant}
    urls = {entry["fullUrl"] for entry in data["entry"]}
    assert actors <= urls and len(actors) == 2
    # A cancelled booking stays in the record as cancelled.
    with Session(engine_for(database_url), expire_on_commit=False) as tx:
        booking.cancel(tx, team.gp, appointment.id or 0, reason="patient unwell")
        tx.commit()
    bundle = Bundle.model_validate_json(json.dumps(export.build_bundle(db, consult)))
    statuses = [a.status for a in resources(bundle, Appointment)]
    assert statuses == ["cancelled"]
