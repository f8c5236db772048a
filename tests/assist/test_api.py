"""The assist through the app: consent, suggestions stored and audited, the GP's choice,
the administrator's page, the registration-number filter."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from server.accounts.models import Role
from server.assist.models import AssistConsent, AssistSuggestion
from server.audit.models import AuditEvent
from server.consults.models import ConsultRequest
from tests.assist.helpers import consent, seed_specialties
from tests.factories import login, make_organisation, make_user

CHEST_KO = "58세 남자, 1시간 전부터 가슴이 조이는 흉통과 식은땀이 있습니다. 심전도 첨부합니다."
RASH_EN = (
    "Itchy red rash on both forearms for two weeks, worse at night; eczema cream did not help."
)


def _gp(db: Session, *, enabled: bool = True) -> tuple[int, object]:
    clinic = make_organisation(db)
    gp = make_user(db, Role.GP, organisation=clinic)
    if enabled:
        consent(db, clinic)
    return clinic.id or 0, gp


def test_off_until_an_administrator_switches_it_on(client: TestClient, db: Session) -> None:
    seed_specialties(db)
    clinic = make_organisation(db)
    gp = make_user(db, Role.GP, organisation=clinic)
    admin = make_user(db, Role.ADMIN, organisation=clinic)
    login(client, gp)
    refused = client.post("/api/assist/suggest", json={"text": CHEST_KO})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "assist_off"

    client.post("/logout")
    login(client, admin)
    page = client.get("/admin/assist")
    assert page.status_code == 200 and 'id="assist-state"' in page.text
    switched = client.post(
        "/admin/assist/consent", data={"enabled": "true"}, follow_redirects=False
    )
    assert switched.status_code == 303
    row = db.get(AssistConsent, clinic.id)
    assert row is not None and row.enabled and row.changed_by_id == admin.id
    db.expire_all()
    event = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "assist.consent_on", AuditEvent.organisation_id == clinic.id
        )
    ).first()
    assert event is not None

    client.post("/logout")
    login(client, gp)
    assert client.post("/api/assist/suggest", json={"text": CHEST_KO}).status_code == 200


def test_gp_cannot_switch_consent(client: TestClient, db: Session) -> None:
    _, gp = _gp(db, enabled=False)
    login(client, gp)  # type: ignore[arg-type]
    response = client.post("/admin/assist/consent", data={"enabled": "true"})
    assert response.status_code in (403, 404)


def test_korean_suggestion_specialty_urgency_stored_and_audited(
    client: TestClient, db: Session
) -> None:
    seed_specialties(db)
    clinic_id, gp = _gp(db)
    login(client, gp)  # type: ignore[arg-type]
    client.cookies.set("dari_lang", "ko")
    response = client.post("/api/assist/suggest", json={"text": CHEST_KO, "urgency": "routine"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["specialties"][0]["code"] == "cardiology"
    assert len(body["specialties"]) == 3
    assert 0 < body["specialties"][0]["confidence"] <= 1
    assert set(body["specialties"][0]["words"]) & {"흉통", "가슴", "식은땀", "심전도"}
    assert body["urgency"]["suggested"] == "urgent" and body["urgency"]["raised"]
    assert "chest_pain_sweating" in [r["rule"] for r in body["urgency"]["reasons"]]
    assert body["cold_start"] is True
    row = db.exec(
        select(AssistSuggestion).where(AssistSuggestion.public_id == body["suggestion_id"])
    ).one()
    assert row.organisation_id == clinic_id and row.urgent
    assert row.specialties.startswith("cardiology:")
    # The question's text is stored nowhere in the suggestion or its audit event.
    event = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "assist.suggested", AuditEvent.object_id == row.public_id
        )
    ).one()
    assert "흉통" not in event.detail and "흉통" not in row.specialties + row.rules
    # Asking again with the same result is the same suggestion shown, stored once.
    again = client.post("/api/assist/suggest", json={"text": CHEST_KO + " "}).json()
    assert again["suggestion_id"] == body["suggestion_id"]


def test_english_suggestion(client: TestClient, db: Session) -> None:
    seed_specialties(db)
    _, gp = _gp(db)
    login(client, gp)  # type: ignore[arg-type]
    body = client.post("/api/assist/suggest", json={"text": RASH_EN}).json()
    assert body["specialties"][0]["code"] == "dermatology"
    assert body["urgency"]["raised"] is False
    assert body["urgency"]["suggested"] == "routine"


def test_never_downgrades_the_gps_urgency(client: TestClient, db: Session) -> None:
    seed_specialties(db)
    _, gp = _gp(db)
    login(client, gp)  # type: ignore[arg-type]
    body = client.post("/api/assist/suggest", json={"text": RASH_EN, "urgency": "urgent"}).json()
    assert body["urgency"]["suggested"] == "urgent"


def test_registration_number_is_refused_and_nothing_stored(client: TestClient, db: Session) -> None:
    seed_specialties(db)
    _, gp = _gp(db)
    login(client, gp)  # type: ignore[arg-type]
    response = client.post(
        "/api/assist/suggest", json={"text": "환자 주민번호 850101-1234567, 흉통과 식은땀"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "registration_number_refused"
    assert "850101" not in response.text
    rows = db.exec(select(AssistSuggestion).where(AssistSuggestion.user_id == gp.id)).all()  # type: ignore[attr-defined]
    assert rows == []


def test_only_gps_get_suggestions(client: TestClient, db: Session) -> None:
    clinic = make_organisation(db)
    consent(db, clinic)
    admin = make_user(db, Role.ADMIN, organisation=clinic)
    login(client, admin)
    assert client.post("/api/assist/suggest", json={"text": RASH_EN}).status_code == 403


def test_choice_is_recorded_with_the_request_and_shown_to_the_admin(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    specialties = seed_specialties(db)
    clinic = make_organisation(db)
    consent(db, clinic)
    gp = make_user(db, Role.GP, organisation=clinic)
    admin = make_user(db, Role.ADMIN, organisation=clinic)
    login(client, gp)
    body = client.post("/api/assist/suggest", json={"text": CHEST_KO}).json()
    form = {
        "specialty_id": str(specialties["cardiology"].id),
        "patient_chart_number": "A-77",
        "patient_age": "58",
        "patient_sex": "male",
        "clinical_question": CHEST_KO,
        "urgency": "urgent",
        "mode": "async",
        "assist_suggestion": body["suggestion_id"],
    }
    sent = client.post("/consults/new", data=form, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    db.expire_all()
    row = db.exec(
        select(AssistSuggestion).where(AssistSuggestion.public_id == body["suggestion_id"])
    ).one()
    consult = db.get(ConsultRequest, row.consult_id)
    assert consult is not None and consult.requester_id == gp.id
    assert row.took_specialty is True and row.in_top_three is True and row.took_urgency is True
    assert row.chosen_urgency == "urgent"
    event = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "assist.choice", AuditEvent.object_id == consult.public_id
        )
    ).one()
    assert json.loads(event.detail)["took_specialty"] is True
    # A suggestion is used once: sending another request with it records nothing more.
    form["patient_chart_number"] = "A-78"
    client.post("/consults/new", data=form, follow_redirects=False)
    db.expire_all()
    used = db.exec(
        select(AssistSuggestion)
        .where(col(AssistSuggestion.consult_id).is_not(None))
        .where(AssistSuggestion.public_id == body["suggestion_id"])
    ).all()
    assert [r.consult_id for r in used] == [consult.id]

    login(other_client, admin)
    page = other_client.get("/admin/assist")
    assert page.status_code == 200
    assert 'id="uptake-decided">1<' in page.text
    assert 'id="uptake-top1">1 (100%)' in page.text


def test_someone_elses_suggestion_id_is_ignored(client: TestClient, db: Session) -> None:
    specialties = seed_specialties(db)
    _, first = _gp(db)
    _, second = _gp(db)
    login(client, first)  # type: ignore[arg-type]
    body = client.post("/api/assist/suggest", json={"text": RASH_EN}).json()
    client.post("/logout")
    login(client, second)  # type: ignore[arg-type]
    form = {
        "specialty_id": str(specialties["dermatology"].id),
        "patient_chart_number": "B-1",
        "patient_age": "30",
        "patient_sex": "female",
        "clinical_question": RASH_EN,
        "assist_suggestion": body["suggestion_id"],
    }
    assert client.post("/consults/new", data=form, follow_redirects=False).status_code == 303
    db.expire_all()
    row = db.exec(
        select(AssistSuggestion).where(AssistSuggestion.public_id == body["suggestion_id"])
    ).one()
    assert row.consult_id is None


def test_status_says_whether_the_assist_is_on(client: TestClient, db: Session) -> None:
    _, on = _gp(db)
    _, off = _gp(db, enabled=False)
    login(client, off)  # type: ignore[arg-type]
    assert client.get("/api/assist/status").json() == {"enabled": False}
    client.post("/logout")
    login(client, on)  # type: ignore[arg-type]
    assert client.get("/api/assist/status").json() == {"enabled": True}
