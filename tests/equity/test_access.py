"""Who sees the equity view: administrators every region, a regional authority its own
region's aggregates only and never a record (404 on every record route)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts import service as accounts
from server.accounts.models import OrgKind, Role
from server.errors import AppError
from tests.equity.fixtures import START, World, make_authority, make_world
from tests.factories import TEST_PASSWORD, login, make_organisation, make_user

PERIOD = f"start={START.isoformat()}&weeks=2"


@pytest.fixture
def world(db: Session) -> World:
    return make_world(db)


def _rows(response_text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response_text.lstrip("\ufeff"))))


def test_authority_sees_its_region_only(client: TestClient, db: Session, world: World) -> None:
    authority = make_authority(db, world.region_a)
    login(client, authority)
    page = client.get(f"/equity?{PERIOD}&specialty={world.specialty.id}")
    assert page.status_code == 200
    assert 'id="overall-n">4<' in page.text  # A1–A4, not region B's
    exported = client.get(f"/equity.csv?{PERIOD}&specialty={world.specialty.id}")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = _rows(exported.text)
    assert rows[1][2] == "4"
    assert {row[1] for row in rows[1:] if row[0] in {"지역", "region"}} == {world.region_a.name_ko}
    # Asking for another region is answered as if it did not exist.
    assert client.get(f"/equity?region={world.region_b.id}").status_code == 404
    assert client.get(f"/equity.csv?region={world.region_b.id}").status_code == 404
    # Its own region may be named explicitly.
    assert client.get(f"/equity?region={world.region_a.id}").status_code == 200


def test_authority_never_reaches_a_record(client: TestClient, db: Session, world: World) -> None:
    authority = make_authority(db, world.region_a)
    login(client, authority)
    for name in ("A1", "A4", "B1"):
        cid = world.consults[name].public_id
        for path in (
            f"/api/consults/{cid}",
            f"/api/consults/{cid}/messages",
            f"/api/consults/{cid}/reports",
            f"/api/consults/{cid}/fhir",
            f"/api/consults/{cid}/notes",
            f"/api/consults/{cid}/calls",
            f"/api/consults/{cid}/attachments/1",
            f"/consults/{cid}",
            f"/consults/{cid}/print",
            f"/consults/{cid}/notes",
            f"/consults/{cid}/call",
        ):
            response = client.get(path)
            assert response.status_code == 404, (path, response.status_code)
    listed = client.get("/api/consults")
    assert listed.status_code in {200, 404}
    home = client.get("/")
    assert home.status_code == 200
    for consult in world.consults.values():
        assert consult.public_id not in listed.text
        assert consult.public_id not in home.text
        assert consult.patient_chart_number not in home.text
    # Administration is not theirs either, and no other page breaks for the new role.
    assert client.get("/admin/users").status_code in {403, 404}
    for path in (
        "/consults",
        "/consults/new",
        "/schedule/appointments",
        "/schedule/roster",
        "/admin/audit",
        "/api/audit",
        "/precall",
    ):
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.status_code < 500, (path, response.status_code)
        for consult in world.consults.values():
            assert consult.patient_chart_number not in response.text, path


def test_admin_sees_every_region_and_others_see_nothing(
    client: TestClient, other_client: TestClient, db: Session, world: World
) -> None:
    admin = make_user(db, Role.ADMIN)
    login(client, admin)
    page = client.get(f"/equity?{PERIOD}&specialty={world.specialty.id}")
    assert page.status_code == 200 and 'id="overall-n">6<' in page.text
    assert client.get(f"/equity?{PERIOD}&region={world.region_b.id}").status_code == 200
    assert client.get("/equity?weeks=abc").status_code == 422
    assert client.get("/equity?weeks=500").status_code == 422
    assert client.get("/equity?urgency=nope").status_code == 422
    login(other_client, world.gp_a)
    assert other_client.get("/equity").status_code == 404
    assert other_client.get("/equity.csv").status_code == 404


def test_authority_role_needs_an_authority_organisation(db: Session) -> None:
    clinic = make_organisation(db, kind=OrgKind.CLINIC)
    with pytest.raises(AppError) as refused:
        accounts.create_user(
            db,
            email="authority@test.example",
            name="당국",
            role=Role.REGION_AUTHORITY,
            organisation_id=clinic.id or 0,
            password=TEST_PASSWORD,
        )
    assert refused.value.code == "invalid_organisation"
    db.rollback()
