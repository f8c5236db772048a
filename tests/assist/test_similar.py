"""Similar consults for the assigned specialist: only what the access rule lets them open."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.accounts.models import Organisation, OrgKind, Role
from server.audit.models import AuditEvent
from server.clock import utcnow
from server.consults.models import ConsultReport, ConsultStatus, Outcome
from tests.assist.helpers import consent, specialty
from tests.factories import login, make_consult_row, make_organisation, make_user

ANGINA = "가슴이 조이는 흉통이 계단을 오를 때 생기고 쉬면 좋아집니다. 협심증 평가 부탁드립니다."


def test_similar_shows_only_consults_the_specialist_may_open(
    client: TestClient, db: Session
) -> None:
    cardiology = specialty(db, "cardiology")
    dermatology = specialty(db, "dermatology")
    hospital = make_organisation(db, kind=OrgKind.HOSPITAL)
    other_hospital = make_organisation(db, kind=OrgKind.HOSPITAL)
    clinic = make_organisation(db)
    elsewhere_clinic = make_organisation(db)
    for organisation in (hospital, other_hospital, clinic, elsewhere_clinic):
        consent(db, organisation)
    me = make_user(db, Role.SPECIALIST, organisation=hospital, specialty=cardiology)
    colleague = make_user(db, Role.SPECIALIST, organisation=other_hospital, specialty=cardiology)
    gp = make_user(db, Role.GP, organisation=clinic)
    far_gp = make_user(db, Role.GP, organisation=elsewhere_clinic)

    current = make_consult_row(
        db,
        gp,
        cardiology.id or 0,
        specialist=me,
        status=ConsultStatus.ACCEPTED,
        clinical_question=ANGINA,
    )
    mine = make_consult_row(
        db,
        gp,
        cardiology.id or 0,
        specialist=me,
        status=ConsultStatus.COMPLETED,
        clinical_question="계단을 오를 때 가슴이 조이는 흉통, 쉬면 사라짐. 협심증 의심.",
        outcome=Outcome.RESOLVED_WITHOUT_REFERRAL,
        completed_at=utcnow(),
    )
    db.add(
        ConsultReport(
            consult_id=mine.id or 0,
            version=1,
            author_id=me.id or 0,
            assessment="안정형 협심증 가능성",
            recommendation="질산염 처방, 운동부하검사",
            signed_at=utcnow(),
            content_hash="0" * 64,
        )
    )
    db.commit()
    unrelated_mine = make_consult_row(
        db,
        gp,
        dermatology.id or 0,
        specialist=me,
        status=ConsultStatus.COMPLETED,
        clinical_question="Itchy rash on the forearms for two weeks.",
    )
    # The same question answered elsewhere, by a colleague of another hospital, for a
    # clinic of another organisation: the access rule does not let me open it.
    elsewhere = make_consult_row(
        db,
        far_gp,
        cardiology.id or 0,
        specialist=colleague,
        status=ConsultStatus.COMPLETED,
        clinical_question=ANGINA,
    )
    # Still open (not closed), even though it is mine.
    open_mine = make_consult_row(
        db,
        gp,
        cardiology.id or 0,
        specialist=me,
        status=ConsultStatus.IN_PROGRESS,
        clinical_question=ANGINA,
    )

    login(client, me)
    response = client.get(f"/api/assist/similar/{current.public_id}")
    assert response.status_code == 200, response.text
    found = [row["public_id"] for row in response.json()]
    assert found[0] == mine.public_id
    assert elsewhere.public_id not in found
    assert open_mine.public_id not in found
    assert current.public_id not in found
    assert len(found) <= 5
    first = response.json()[0]
    assert "협심증" in first["summary"] and first["outcome"] == "resolved_without_referral"
    if unrelated_mine.public_id in found:  # allowed, but less similar than the angina one
        assert found.index(unrelated_mine.public_id) > 0

    page = client.get(f"/assist/similar/{current.public_id}")
    assert page.status_code == 200
    assert mine.public_id in page.text and elsewhere.public_id not in page.text
    db.expire_all()
    events = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "assist.similar_viewed", AuditEvent.object_id == current.public_id
        )
    ).all()
    assert len(events) == 2 and elsewhere.public_id not in events[0].detail

    # The colleague is not assigned to the current consult: the same 404 as every route.
    client.post("/logout")
    login(client, colleague)
    assert client.get(f"/api/assist/similar/{current.public_id}").status_code == 404
    # Nor the clinic's GP (the list is for the assigned specialist).
    client.post("/logout")
    login(client, gp)
    assert client.get(f"/api/assist/similar/{current.public_id}").status_code == 404


def test_similar_is_off_without_consent(client: TestClient, db: Session) -> None:
    cardiology = specialty(db, "cardiology")
    hospital = make_organisation(db, kind=OrgKind.HOSPITAL)
    me = make_user(db, Role.SPECIALIST, organisation=hospital, specialty=cardiology)
    gp = make_user(db, Role.GP)
    current = make_consult_row(
        db, gp, cardiology.id or 0, specialist=me, status=ConsultStatus.ACCEPTED
    )
    login(client, me)
    response = client.get(f"/api/assist/similar/{current.public_id}")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "assist_off"
    hospital_row = db.get(Organisation, hospital.id)
    assert hospital_row is not None
