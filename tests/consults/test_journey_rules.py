"""The seams of a consult's journey (issue 11), as rules and pages: the call and the
signature move the consult and its appointment on, a done consult keeps no live
appointment (FHIR and the calendar agree), a reschedule keeps the calendar UID, refused
input comes back by its field in Korean, refused reads are audited."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlmodel import Session, col, select

from server.accounts.models import Role
from server.audit.models import AuditEvent
from server.calls import service as calls
from server.consults import export, lifecycle
from server.consults.models import ConsultEvent, ConsultMode, ConsultRequest, ConsultStatus
from server.scheduling import booking, calendar
from server.scheduling.models import Appointment, AppointmentStatus
from tests.consults.helpers import make_consult, make_team
from tests.factories import login, make_user
from tests.scheduling.test_booking import book, setup_pair

HTML = {"Accept": "text/html"}
S = ConsultStatus


def _appointment(db: Session, consult: ConsultRequest) -> Appointment:
    db.expire_all()
    return db.exec(
        select(Appointment)
        .where(Appointment.consult_request_id == consult.id)
        .order_by(col(Appointment.id).desc())
    ).one()


def _fhir(db: Session, consult: ConsultRequest) -> dict[str, str]:
    bundle = export.build_bundle(db, consult)
    found: dict[str, str] = {}
    for entry in bundle["entry"]:
        resource: dict[str, Any] = entry["resource"]
        if resource["resourceType"] in ("Appointment", "Encounter"):
            found[resource["resourceType"]] = resource["status"]
    return found


def test_the_call_and_the_report_move_a_booked_consult_and_its_appointment(
    client: TestClient, db: Session
) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    login(client, gp)
    from tests.scheduling.factories import make_consult as make_booking_consult

    consult_row = make_booking_consult(db, gp, specialty)
    consult_row.mode = ConsultMode.VIDEO
    db.add(consult_row)
    db.commit()
    assert book(client, consult_row, specialist, slots[0].starts_at.isoformat()).status_code == 201
    db.refresh(consult_row)
    assert consult_row.status == S.SCHEDULED

    # Both join: the call starts, the consult is in progress, the timeline says so.
    calls.record_join(db, consult_row.public_id, "peer-gp", user_id=gp.id)
    calls.record_join(db, consult_row.public_id, "peer-sp", user_id=specialist.id)
    db.commit()
    db.refresh(consult_row)
    assert str(consult_row.status) == "in_progress"
    assert _appointment(db, consult_row).status == AppointmentStatus.ACTIVE
    # The call ends: the appointment was kept (fulfilled), the consult may still be joined.
    calls.record_leave(db, consult_row.public_id, "peer-gp", room_empty=False)
    calls.record_leave(db, consult_row.public_id, "peer-sp", room_empty=True)
    db.commit()
    appointment = _appointment(db, consult_row)
    assert appointment.status == AppointmentStatus.COMPLETED and appointment.sequence == 1
    assert _fhir(db, consult_row) == {"Appointment": "fulfilled", "Encounter": "in-progress"}
    kinds = [e.to_value for e in db.exec(select(ConsultEvent)).all() if e.kind == "call"]
    assert kinds[-2:] == ["call started", "call ended"]
    # The specialist ends the consultation by its verb: no call page any more.
    verbs = [a.label for a in lifecycle.actions_for(specialist, consult_row)]
    assert "End the call" in verbs and "report_pending" not in verbs
    lifecycle.transition(db, consult_row, S.REPORT_PENDING, actor=specialist)
    db.commit()
    assert not lifecycle.call_joinable(consult_row)
    assert _fhir(db, consult_row)["Encounter"] == "finished"


def test_a_closed_consult_keeps_no_booked_appointment(client: TestClient, db: Session) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    from tests.scheduling.factories import make_consult as make_booking_consult

    consult = make_booking_consult(db, gp, specialty)
    login(client, gp)
    assert book(client, consult, specialist, slots[0].starts_at.isoformat()).status_code == 201
    db.refresh(consult)
    lifecycle.transition(db, consult, S.CANCELLED, actor=gp, reason="patient went to Seoul")
    db.commit()
    appointment = _appointment(db, consult)
    # No call was held: the future appointment is cancelled everywhere.
    assert appointment.status == AppointmentStatus.CANCELLED
    assert booking.active_appointment(db, consult.id or 0) is None
    assert _fhir(db, consult) == {"Appointment": "cancelled", "Encounter": "cancelled"}
    feed = Calendar.from_ical(calendar.feed_ics(db, specialist, "http://dari.test"))
    events = [c for c in feed.walk("VEVENT")]
    assert [str(e["STATUS"]) for e in events] == ["CANCELLED"]


def test_a_rescheduled_appointment_keeps_its_calendar_uid_and_raises_sequence(
    client: TestClient, db: Session
) -> None:
    gp, specialist, specialty, slots = setup_pair(db)
    from tests.scheduling.factories import make_consult as make_booking_consult

    consult = make_booking_consult(db, gp, specialty)
    login(client, gp)
    first = book(client, consult, specialist, slots[0].starts_at.isoformat()).json()
    before = Calendar.from_ical(calendar.feed_ics(db, specialist, "http://dari.test"))
    (event,) = before.walk("VEVENT")
    moved = client.post(
        f"/api/appointments/{first['id']}/reschedule",
        json={"starts_at": slots[2].starts_at.isoformat(), "reason": "ferry delayed"},
    )
    assert moved.status_code == 200, moved.text
    db.expire_all()
    after = Calendar.from_ical(calendar.feed_ics(db, specialist, "http://dari.test"))
    (moved_event,) = after.walk("VEVENT")
    assert str(moved_event["UID"]) == str(event["UID"])
    assert int(str(moved_event["SEQUENCE"])) > int(str(event.get("SEQUENCE", 0)))


def test_refused_reason_comes_back_by_its_field_in_korean(client: TestClient, db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.REQUESTED)
    login(client, team.specialist)
    page = client.get(f"/consults/{consult.public_id}", headers=HTML)
    # Verbs, not state names; declining asks for confirmation.
    assert ">수락</button>" in page.text and ">거절</button>" in page.text
    assert "data-confirm=" in page.text and ">거절됨</button>" not in page.text
    refused = client.post(
        f"/consults/{consult.public_id}/transition",
        data={"to": "declined", "reason": "", "csrf_token": login(client, team.specialist)},
        headers=HTML,
    )
    assert refused.status_code == 422
    assert 'id="reason-error"' in refused.text and "사유를 적어 주십시오" in refused.text
    assert "say why" not in refused.text
    api = client.post(
        f"/api/consults/{consult.public_id}/transitions", json={"to": "declined", "reason": ""}
    )
    body = api.json()["error"]
    assert body["code"] == "reason_required" and body["field"] == "reason"


def test_refused_reads_are_audited_for_the_consults_organisation(
    client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.IN_PROGRESS)
    outsider = make_user(db, role=team.gp.role)
    login(client, outsider)
    assert client.get(f"/consults/{consult.public_id}", headers=HTML).status_code == 404
    db.expire_all()
    denied = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "consult.denied", AuditEvent.object_id == consult.public_id
        )
    ).all()
    assert [(e.actor_id, e.object_id, e.organisation_id) for e in denied] == [
        (outsider.id, consult.public_id, consult.organisation_id)
    ]


def test_audit_page_takes_empty_fields_and_reads_as_sentences(
    client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.IN_PROGRESS)
    admin = make_user(db, role=Role.ADMIN, organisation=team.clinic)
    login(client, team.gp)
    assert client.get(f"/consults/{consult.public_id}", headers=HTML).status_code == 200
    login(client, admin)
    page = client.get(
        "/admin/audit",
        params={"action": "", "object_type": "", "object_id": "", "actor_id": ""},
        headers=HTML,
    )
    assert page.status_code == 200, page.text
    assert f"{team.gp.name} 님이 {consult.patient_chart_number} 협진을 열람" in page.text
    assert "<details>" in page.text


def test_the_consult_page_starts_the_report_from_the_note_beside_it(
    client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.IN_PROGRESS, mode=ConsultMode.VIDEO)
    login(client, team.specialist)
    page = client.get(f"/consults/{consult.public_id}", headers=HTML).text
    assert 'data-notes-draft-target="report-findings"' in page
    assert 'id="report-findings"' in page and "data-notes-draft" in page
    # The call page's one click: the note's text lands in the draft's findings.
    csrf = login(client, team.specialist)
    started = client.post(
        f"/api/consults/{consult.public_id}/report/from-note",
        json={"text": "심방세동, 심박수 110"},
        headers={"X-CSRF-Token": csrf},
    )
    assert started.status_code == 200, started.text
    assert started.json()["findings"] == "심방세동, 심박수 110"
    again = client.post(
        f"/api/consults/{consult.public_id}/report/from-note",
        json={"text": "심부전 없음"},
        headers={"X-CSRF-Token": csrf},
    )
    assert again.json()["findings"] == "심방세동, 심박수 110\n\n심부전 없음"


def test_the_gps_to_do_list_has_the_specialists_open_question(
    client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.ACCEPTED)
    csrf = login(client, team.specialist)
    asked = client.post(
        f"/api/consults/{consult.public_id}/messages",
        json={"body": "흡연 여부를 알려 주시겠어요?"},
        headers={"X-CSRF-Token": csrf},
    )
    assert asked.status_code == 201, asked.text
    login(client, team.gp)
    home = client.get("/", headers=HTML).text
    assert "전문의가 질문했습니다" in home and f"/consults/{consult.public_id}" in home
