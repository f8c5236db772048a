"""Signed report versions never change: refused by the service and by the database."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from server.consults import reports, service
from server.consults.access import Access, Viewing
from server.consults.errors import ReportSigned
from server.consults.models import ConsultReport, ConsultStatus, GPDecision
from server.consults.schemas import DecisionIn, ReportIn
from tests.consults.helpers import make_consult, make_team


def test_sign_then_edit_is_refused_and_amendment_points_back(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    viewing = Viewing(consult, Access.ASSIGNED, team.specialist)
    reports.save_draft(db, viewing, ReportIn(findings="first"))
    signed = reports.sign(db, viewing)
    db.commit()
    assert consult.status == ConsultStatus.REPORT_PENDING
    with pytest.raises(ReportSigned):
        reports.save_draft(db, viewing, ReportIn(findings="changed"))
    amendment = reports.amend(db, viewing, "wrong dose")
    assert (amendment.version, amendment.amends_id, amendment.findings) == (2, signed.id, "first")
    reports.save_draft(db, viewing, ReportIn(findings="second"))
    reports.sign(db, viewing)
    db.commit()
    db.expire_all()
    first = db.get(ConsultReport, signed.id)
    assert (
        first is not None
        and first.findings == "first"
        and first.content_hash == signed.content_hash
    )


def test_database_refuses_to_change_or_delete_signed_rows(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REPORT_PENDING, signed_report=True)
    # Raw SQL past the models, on the session's connection.
    report = (
        db.connection()
        .execute(text("SELECT id FROM consultreport WHERE consult_id = :c"), {"c": consult.id})
        .one()
    )
    with pytest.raises(DBAPIError):
        db.connection().execute(
            text("UPDATE consultreport SET findings = 'tampered' WHERE id = :id"),
            {"id": report[0]},
        )
    db.rollback()
    with pytest.raises(DBAPIError):
        db.connection().execute(text("DELETE FROM consultreport WHERE id = :id"), {"id": report[0]})
    db.rollback()
    viewing = Viewing(consult, Access.CLINIC, team.gp)
    decision = service.record_decision(db, viewing, DecisionIn(action="referred", note="ok"))
    db.commit()
    with pytest.raises(DBAPIError):
        db.connection().execute(
            text("UPDATE gpdecision SET note = 'changed' WHERE id = :id"), {"id": decision.id}
        )
    db.rollback()
    db.expire_all()
    stored = db.get(GPDecision, decision.id)
    assert stored is not None and stored.note == "ok"


def test_only_the_assigned_specialist_writes(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    with pytest.raises(Exception) as refused:
        reports.save_draft(db, Viewing(consult, Access.CLINIC, team.gp), ReportIn())
    assert getattr(refused.value, "status", 0) == 403


def test_two_autosaves_at_once_make_one_draft(db: Session, database_url: str) -> None:
    import threading

    from sqlmodel import select

    from server.consults.models import ConsultRequest
    from server.db import engine_for

    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def autosave(text_: str) -> None:
        try:
            with Session(engine_for(database_url), expire_on_commit=False) as session:
                barrier.wait(timeout=10)
                mine = session.get(ConsultRequest, consult.id)
                assert mine is not None
                viewing = Viewing(mine, Access.ASSIGNED, team.specialist)
                reports.save_draft(session, viewing, ReportIn(findings=text_))
                session.commit()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=autosave, args=(t,)) for t in ("tab one", "tab two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    drafts = db.exec(select(ConsultReport).where(ConsultReport.consult_id == consult.id)).all()
    assert len(drafts) == 1 and drafts[0].findings in ("tab one", "tab two")
