"""Role home pages: the GP's requests and tasks, the specialist's inbox with triage."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import OrgKind, Role, User
from server.clock import utcnow
from server.consults import lifecycle
from server.consults.models import ConsultRequest, ConsultStatus, Urgency
from server.home import views as home
from tests.factories import login, make_organisation, make_specialty, make_user

HTML = {"Accept": "text/html"}


def consult(**values: object) -> ConsultRequest:
    """An unsaved consult for the pure functions."""
    base: dict[str, object] = {
        "organisation_id": 1,
        "requester_id": 1,
        "specialty_id": 1,
        "patient_chart_number": "C-1",
        "patient_age": 50,
        "patient_sex": "male",
        "clinical_question": "?",
        "requested_at": utcnow(),
    }
    base.update(values)
    return ConsultRequest.model_validate(base)


def test_triage_puts_urgent_first_then_the_longest_waiting() -> None:
    now = utcnow()
    old_routine = consult(urgency=Urgency.ROUTINE, requested_at=now - timedelta(days=2))
    new_urgent = consult(urgency=Urgency.URGENT, requested_at=now)
    old_urgent = consult(urgency=Urgency.URGENT, requested_at=now - timedelta(hours=1))
    soon = consult(urgency=Urgency.SOON, requested_at=now)
    assert home.triage_order([old_routine, new_urgent, soon, old_urgent]) == [
        old_urgent,
        new_urgent,
        soon,
        old_routine,
    ]


def test_gp_tasks_and_groups() -> None:
    draft = consult(status=ConsultStatus.DRAFT)
    signed = consult(status=ConsultStatus.REPORT_PENDING, report_signed_at=utcnow())
    live = consult(status=ConsultStatus.IN_PROGRESS, mode="video")
    waiting = consult(status=ConsultStatus.REQUESTED)
    done = consult(status=ConsultStatus.COMPLETED, report_signed_at=utcnow())
    page = home.gp_home([draft, signed, live, waiting, done])
    tasks = {task.consult.status: task for task in page.tasks}
    S = ConsultStatus
    assert set(tasks) == {S.DRAFT, S.REPORT_PENDING, S.IN_PROGRESS}
    assert tasks[S.IN_PROGRESS].href.endswith("/call")
    assert not tasks[S.DRAFT].href.endswith("/call")
    assert [status for status, _ in page.by_status] == [
        "requested",
        "in_progress",
        "report_pending",
    ]
    assert page.closed == [done]


def test_closed_lists_hold_exactly_the_lifecycles_terminal_states() -> None:
    every = [consult(status=status) for status in ConsultStatus]
    page = home.gp_home(every)
    assert {c.status for c in page.closed} == lifecycle.TERMINAL
    # Every sent consult that is not closed is listed by status, a no-show included.
    assert [status for status, _ in page.by_status] == list(lifecycle.OPEN)
    assert "no_show" in dict(page.by_status)
    specialist = User(
        id=7,
        email="s@test.example",
        name="s",
        password_hash="x",
        organisation_id=1,
        role=Role.SPECIALIST,
        specialty_id=1,
    )
    mine = [consult(status=status, assigned_specialist_id=7) for status in ConsultStatus]
    inbox = home.inbox(mine, specialist)
    assert {c.status for c in inbox.closed} == lifecycle.TERMINAL
    assert {c.status for c in inbox.mine} == set(ConsultStatus) - lifecycle.TERMINAL


def test_join_call_only_for_open_video_consults() -> None:
    assert lifecycle.call_joinable(consult(status=ConsultStatus.SCHEDULED, mode="video"))
    assert not lifecycle.call_joinable(consult(status=ConsultStatus.SCHEDULED, mode="async"))
    assert not lifecycle.call_joinable(consult(status=ConsultStatus.COMPLETED, mode="video"))


def _saved(db: Session, gp: User, specialty_id: int, **values: object) -> ConsultRequest:
    row = consult(
        organisation_id=gp.organisation_id,
        requester_id=gp.id,
        specialty_id=specialty_id,
        **values,
    )
    db.add(row)
    db.commit()
    return row


def test_specialist_inbox_shows_the_pool_urgent_first_with_accept_and_decline(
    client: TestClient, db: Session
) -> None:
    specialty = make_specialty(db)
    other_specialty = make_specialty(db)
    gp = make_user(db, Role.GP, organisation=make_organisation(db, kind=OrgKind.CLINIC))
    specialist = make_user(db, Role.SPECIALIST, specialty=specialty)
    routine = _saved(db, gp, specialty.id or 0, status="requested", patient_chart_number="R-1")
    urgent = _saved(
        db, gp, specialty.id or 0, status="requested", urgency="urgent", patient_chart_number="U-1"
    )
    elsewhere = _saved(
        db, gp, other_specialty.id or 0, status="requested", patient_chart_number="X-9"
    )
    login(client, specialist)
    page = client.get("/", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert 'id="ringing"' in text
    assert text.index(f'id="pool-{urgent.public_id}"') < text.index(
        f'id="pool-{routine.public_id}"'
    )
    assert elsewhere.public_id not in text
    assert f'action="/consults/{routine.public_id}/transition"' in text
    assert 'value="accepted"' in text and 'value="declined"' in text
    # Declining cannot be undone: the button asks first (lib/confirm.js, loaded here).
    decline = text.split('value="declined"', 1)[1].split(">", 1)[0]
    assert 'data-confirm="이 협진을 거절할까요? 의뢰 기관이 사유를 읽습니다.' in decline
    assert "/static/lib/confirm." in text
    # Accepting from the inbox goes through the consults' own route and rule.
    accepted = client.post(
        f"/consults/{routine.public_id}/transition",
        data={"to": "accepted", "reason": ""},
        follow_redirects=False,
    )
    assert accepted.status_code == 303
    db.refresh(routine)
    assert routine.status == "accepted" and routine.assigned_specialist_id == specialist.id
    after = client.get("/", headers=HTML).text
    assert f'id="pool-{routine.public_id}"' not in after
    assert routine.patient_chart_number in after.split('id="mine"', 1)[1]


def test_gp_home_lists_the_clinics_requests_and_what_needs_them(
    client: TestClient, db: Session
) -> None:
    specialty = make_specialty(db)
    clinic = make_organisation(db, kind=OrgKind.CLINIC)
    gp = make_user(db, Role.GP, organisation=clinic)
    colleague = make_user(db, Role.GP, organisation=clinic)
    stranger = make_user(db, Role.GP)
    draft = _saved(db, colleague, specialty.id or 0, status="draft", patient_chart_number="D-7")
    live = _saved(db, gp, specialty.id or 0, status="in_progress", patient_chart_number="L-3")
    theirs = _saved(db, stranger, specialty.id or 0, status="requested", patient_chart_number="Z-1")
    login(client, gp)
    page = client.get("/", headers=HTML).text
    tasks = page.split('id="tasks"', 1)[1].split("</section>", 1)[0]
    assert f"/consults/{draft.public_id}" in tasks
    assert f"/consults/{live.public_id}/call" in tasks
    assert theirs.public_id not in page
    assert 'href="/consults/new"' in page


def test_admin_home_links_to_the_audit_log(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.ADMIN))
    page = client.get("/", headers=HTML)
    assert 'href="/admin/audit"' in page.text
    assert client.get("/admin/audit", headers=HTML).status_code == 200
