"""The plain consult pages: request form, consult page, printable report."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.consults.models import ConsultRequest, ConsultStatus
from tests.consults.helpers import make_consult, make_team, png_bytes
from tests.factories import login

HTML = {"Accept": "text/html"}


def test_request_form_creates_and_refuses_registration_numbers(
    client: TestClient, db: Session
) -> None:
    team = make_team(db)
    login(client, team.gp)
    assert "clinical_question" in client.get("/consults/new", headers=HTML).text
    form = {
        "specialty_id": str(team.specialty.id),
        "patient_chart_number": "P-77",
        "patient_age": "54",
        "patient_sex": "male",
        "clinical_question": "Palpitations since 2024-03-02; call 010-1234-5678",
        "urgency": "urgent",
        "mode": "async",
        "vital_signs": "BP 150/90",
    }
    refused = client.post(
        "/consults/new", data={**form, "history": "주민번호 800101-1234567"}, headers=HTML
    )
    assert refused.status_code == 422
    assert "주민등록번호" in refused.text and 'id="history-error"' in refused.text
    assert "800101-1234567" not in refused.text  # not even echoed back into the form
    assert "Palpitations" in refused.text  # the rest of the form is kept
    assert "주민번호 </textarea>" in refused.text  # and the rest of the field itself
    assert (
        db.exec(select(ConsultRequest).where(ConsultRequest.patient_chart_number == "P-77")).first()
        is None
    )
    created = client.post("/consults/new", data=form, headers=HTML, follow_redirects=False)
    assert created.status_code == 303
    page = client.get(created.headers["location"], headers=HTML)
    assert page.status_code == 200 and "P-77" in page.text and "010-1234-5678" in page.text
    assert "/static/consults." in page.text


def test_consult_page_upload_message_report_and_print(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    base = f"/consults/{consult.public_id}"
    csrf = login(client, team.gp)
    del client.headers["X-CSRF-Token"]  # a plain browser form: the token is a form field
    uploaded = client.post(
        f"{base}/attachments",
        data={"csrf_token": csrf},
        files={"file": ("ecg.png", png_bytes(), "image/png")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303, uploaded.text
    posted = client.post(
        f"{base}/messages",
        data={"csrf_token": csrf, "body": "ECG attached"},
        follow_redirects=False,
    )
    assert posted.status_code == 303
    login(other_client, team.specialist)
    page = other_client.get(base, headers=HTML).text
    assert "ECG attached" in page and "/thumbnail" in page and "report-form" in page
    signed = other_client.post(
        f"{base}/report",
        data={
            "findings": "Sinus rhythm",
            "recommendation": "No change",
            "action": "sign",
            "referral_needed": "true",
            "referral_urgency": "routine",
        },
        follow_redirects=False,
    )
    assert signed.status_code == 303
    ko = client.get(f"{base}/print?lang=ko", headers=HTML)
    en = client.get(f"{base}/print?lang=en", headers=HTML)
    assert ko.status_code == en.status_code == 200
    assert "/static/print." in en.text and "Sinus rhythm" in en.text
    assert "Remote consultation report" in en.text and 'lang="en"' in en.text
    assert "원격 협진 보고서" in ko.text and 'lang="ko"' in ko.text
    assert "<script>" not in en.text  # CSP: no inline scripts


def test_pool_and_admin_views_render(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    from server.accounts.models import Role
    from tests.factories import make_user

    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    login(client, team.gp)
    client.post(
        f"/api/consults/{consult.public_id}/attachments?filename=x.png", content=png_bytes()
    )
    login(other_client, team.specialist)
    pool = other_client.get(f"/consults/{consult.public_id}", headers=HTML)
    assert pool.status_code == 200 and "x.png" in pool.text and "/thumbnail" not in pool.text
    assert 'value="accepted"' in pool.text and 'value="scheduled"' not in pool.text
    other_client.cookies.clear()
    login(other_client, make_user(db, Role.ADMIN, organisation=team.clinic))
    admin = other_client.get(f"/consults/{consult.public_id}", headers=HTML)
    assert admin.status_code == 200 and "/thumbnail" in admin.text
    assert 'value="accepted"' not in admin.text
    listing = client.get("/consults", headers=HTML)
    assert consult.public_id in listing.text
