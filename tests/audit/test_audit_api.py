"""Administrators filter and read their own organisation's audit events."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Role
from server.consults.models import ConsultStatus
from tests.consults.helpers import make_consult, make_team
from tests.factories import login, make_user


def test_admin_reads_own_organisation_events_only(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    login(other_client, team.gp)
    assert other_client.get(f"/api/consults/{consult.public_id}").status_code == 200
    admin = make_user(db, Role.ADMIN, organisation=team.clinic)
    login(client, admin)
    events = client.get(
        "/api/audit", params={"object_id": consult.public_id, "action": "consult."}
    ).json()
    assert events and all(e["organisation_id"] == team.clinic.id for e in events)
    assert any(e["action"] == "consult.read" and e["actor_id"] == team.gp.id for e in events)
    assert events == sorted(events, key=lambda e: -e["seq"])
    page = client.get(
        "/admin/audit", params={"object_id": consult.public_id}, headers={"Accept": "text/html"}
    )
    assert page.status_code == 200 and "consult.read" in page.text

    # The specialist's hospital administrator sees what their own staff did.
    hospital_admin = make_user(db, Role.ADMIN, organisation=team.hospital)
    login(other_client, team.specialist)
    other_client.get(f"/api/consults/{consult.public_id}")
    other_client.cookies.clear()
    login(other_client, hospital_admin)
    theirs = other_client.get("/api/audit", params={"object_id": consult.public_id}).json()
    assert theirs and {e["actor_id"] for e in theirs} == {team.specialist.id}

    outsider = make_user(db, Role.ADMIN)
    other_client.cookies.clear()
    login(other_client, outsider)
    assert other_client.get("/api/audit", params={"object_id": consult.public_id}).json() == []


def test_non_admins_cannot_read_the_log(client: TestClient, db: Session) -> None:
    login(client, make_user(db, Role.GP))
    assert client.get("/api/audit").status_code == 403
    assert client.get("/admin/audit", headers={"Accept": "text/html"}).status_code == 403
