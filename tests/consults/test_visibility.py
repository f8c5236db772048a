"""Who sees what: other clinics, other specialties and other organisations get 404."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.accounts.models import Role
from server.audit.models import AuditEvent
from server.consults.models import ConsultStatus
from tests.consults.helpers import Team, make_consult, make_team, png_bytes
from tests.factories import login, make_user


def arrange(client: TestClient, db: Session) -> tuple[Team, str, str, str]:
    """Clinic A's consult with an attachment and a signed report, made through the API."""
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    login(client, team.specialist)
    uploaded = client.post(
        f"/api/consults/{consult.public_id}/attachments?filename=a.png", content=png_bytes()
    )
    assert uploaded.status_code == 201
    client.put(f"/api/consults/{consult.public_id}/report/draft", json={"findings": "x"})
    assert client.post(f"/api/consults/{consult.public_id}/report/sign").status_code == 200
    report_id = client.get(f"/api/consults/{consult.public_id}/reports").json()[0]["id"]
    return team, consult.public_id, uploaded.json()["id"], str(report_id)


def urls(cid: str, aid: str) -> list[str]:
    return [
        f"/api/consults/{cid}",
        f"/api/consults/{cid}/messages",
        f"/api/consults/{cid}/attachments/{aid}",
        f"/api/consults/{cid}/attachments/{aid}/thumbnail",
        f"/api/consults/{cid}/reports",
        f"/api/consults/{cid}/fhir",
        f"/consults/{cid}",
        f"/consults/{cid}/print",
    ]


def test_gp_of_another_clinic_gets_404_for_everything(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    _team, cid, aid, _rid = arrange(client, db)
    login(other_client, make_user(db, Role.GP))
    for url in urls(cid, aid):
        response = other_client.get(url)
        assert response.status_code == 404, url
        page = other_client.get(url, headers={"Accept": "text/html"})
        assert page.status_code == 404 and "Traceback" not in page.text, url
    for url, body in [
        (f"/api/consults/{cid}/messages", {"body": "hello"}),
        (f"/api/consults/{cid}/transitions", {"to": "cancelled", "reason": "x"}),
        (f"/api/consults/{cid}/close", {"outcome": "other"}),
    ]:
        assert other_client.post(url, json=body).status_code == 404, url
    assert (
        other_client.post(
            f"/api/consults/{cid}/attachments?filename=b.png", content=png_bytes()
        ).status_code
        == 404
    )
    assert cid not in [c["id"] for c in other_client.get("/api/consults").json()]


def test_other_specialist_and_other_admin_get_404(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    team, cid, aid, _rid = arrange(client, db)
    # Same specialty, but the consult is assigned to a colleague: no longer in the pool.
    login(other_client, make_user(db, Role.SPECIALIST, specialty=team.specialty))
    assert other_client.get(f"/api/consults/{cid}").status_code == 404
    other_client.cookies.clear()
    login(other_client, make_user(db, Role.ADMIN))
    for url in urls(cid, aid):
        assert other_client.get(url).status_code == 404, url


def test_clinic_admin_reads_with_an_audit_event_but_cannot_act(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    team, cid, aid, _rid = arrange(client, db)
    admin = make_user(db, Role.ADMIN, organisation=team.clinic)
    login(other_client, admin)
    record = other_client.get(f"/api/consults/{cid}")
    assert record.status_code == 200 and record.json()["access"] == "admin"
    assert other_client.get(f"/api/consults/{cid}/attachments/{aid}").status_code == 200
    reads = db.exec(
        select(AuditEvent).where(AuditEvent.actor_id == admin.id, AuditEvent.object_id == cid)
    ).all()
    assert reads and all(json.loads(e.detail)["access"] == "admin" for e in reads)
    assert other_client.post(f"/api/consults/{cid}/messages", json={"body": "x"}).status_code == 403
    moved = other_client.post(
        f"/api/consults/{cid}/transitions", json={"to": "report_pending", "reason": "x"}
    )
    assert moved.status_code == 403


def test_pool_sees_the_request_but_not_the_files(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    login(client, team.gp)
    uploaded = client.post(
        f"/api/consults/{consult.public_id}/attachments?filename=a.png", content=png_bytes()
    ).json()
    colleague = make_user(db, Role.SPECIALIST, specialty=team.specialty)
    login(other_client, colleague)
    view = other_client.get(f"/api/consults/{consult.public_id}").json()
    assert view["access"] == "pool" and view["clinical_question"]
    assert view["attachments"][0]["kind"] == "png" and view["attachments"][0]["url"] is None
    assert (
        other_client.get(
            f"/api/consults/{consult.public_id}/attachments/{uploaded['id']}"
        ).status_code
        == 404
    )
    assert other_client.get(f"/api/consults/{consult.public_id}/fhir").status_code == 404
