"""The call page and the pre-call page: who may open them, and what they carry."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Role
from server.consults.models import ConsultMode, ConsultStatus
from tests.factories import login, make_specialty, make_user
from tests.web.support import make_call_case

HTML = {"Accept": "text/html"}


def test_both_participants_open_the_call_page(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    case = make_call_case(db)
    login(client, case.gp)
    login(other_client, case.specialist)
    for browser in (client, other_client):
        page = browser.get(f"/consults/{case.consult.public_id}/call", headers=HTML)
        assert page.status_code == 200
        assert f'data-room="{case.consult.public_id}"' in page.text
        assert 'data-ws="/ws"' in page.text
        assert f'href="/consults/{case.consult.public_id}#thread"' in page.text
        assert "/static/call." in page.text and 'id="notes-region"' in page.text


def test_others_get_the_same_404_as_for_a_missing_consult(client: TestClient, db: Session) -> None:
    case = make_call_case(db)
    stranger_gp = make_user(db, Role.GP)
    login(client, stranger_gp)
    hidden = client.get(f"/consults/{case.consult.public_id}/call")
    missing = client.get("/consults/no-such-consult-id/call")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_pool_specialist_and_admin_are_not_call_participants(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    case = make_call_case(db)
    same_specialty = make_user(db, Role.SPECIALIST, specialty=make_specialty(db))
    login(client, same_specialty)
    assert client.get(f"/consults/{case.consult.public_id}/call").status_code == 404
    login(other_client, make_user(db, Role.ADMIN))
    assert other_client.get(f"/consults/{case.consult.public_id}/call").status_code == 404


def test_anonymous_visitor_is_asked_to_log_in(client: TestClient, db: Session) -> None:
    case = make_call_case(db)
    page = client.get(f"/consults/{case.consult.public_id}/call", headers=HTML)
    assert page.status_code == 401
    assert 'href="/login"' in page.text
    assert client.get("/precall", headers=HTML).status_code == 401


def test_precall_page_offers_devices_and_the_link_test(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.GP))
    page = client.get("/precall", headers=HTML)
    assert page.status_code == 200
    for marker in ('id="camera"', 'id="microphone"', 'id="start-test"', "/static/precall."):
        assert marker in page.text


def test_call_page_is_korean_by_default_and_english_on_request(
    client: TestClient, db: Session
) -> None:
    case = make_call_case(db)
    login(client, case.gp)
    korean = client.get(f"/consults/{case.consult.public_id}/call", headers=HTML)
    assert '<html lang="ko">' in korean.text and "통화 종료" in korean.text
    client.cookies.set("dari_lang", "en")
    english = client.get(f"/consults/{case.consult.public_id}/call", headers=HTML)
    assert '<html lang="en">' in english.text and "Hang up" in english.text


def test_guest_page_shows_no_consult_and_no_invitation_tools(client: TestClient) -> None:
    page = client.get("/calls/guest", headers=HTML)
    assert page.status_code == 200
    assert 'data-guest="yes"' in page.text and 'data-room=""' in page.text
    for absent in ('id="guest-panel"', 'id="notes-region"', 'id="btn-writing"'):
        assert absent not in page.text


def test_continue_in_writing_switches_a_video_consult_and_opens_an_async_one(
    client: TestClient, db: Session
) -> None:
    case = make_call_case(db)
    login(client, case.gp)
    url = f"/consults/{case.consult.public_id}/call"
    video = client.get(url, headers=HTML)
    assert f'data-switch-url="/consults/{case.consult.public_id}/mode"' in video.text
    case.consult.mode = ConsultMode.ASYNC
    db.add(case.consult)
    db.commit()
    # A written consult has no call page: the consult page (its thread) opens instead.
    written = client.get(url, headers=HTML, follow_redirects=False)
    assert written.status_code == 303
    assert written.headers["location"] == f"/consults/{case.consult.public_id}"


def test_a_consult_past_its_call_has_no_call_page(client: TestClient, db: Session) -> None:
    case = make_call_case(db)
    login(client, case.gp)
    for status in (ConsultStatus.REPORT_PENDING, ConsultStatus.COMPLETED):
        case.consult.status = status
        db.add(case.consult)
        db.commit()
        answer = client.get(
            f"/consults/{case.consult.public_id}/call", headers=HTML, follow_redirects=False
        )
        assert answer.status_code == 303, status


def test_call_page_tells_the_script_the_clinic_time_zone(client: TestClient, db: Session) -> None:
    case = make_call_case(db)
    login(client, case.gp)
    page = client.get(f"/consults/{case.consult.public_id}/call", headers=HTML)
    assert 'data-timezone="Asia/Seoul"' in page.text
