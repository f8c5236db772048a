"""Administrator pages and API: users of one's own organisation (create, deactivate,
reactivate), organisations, specialties, the hospital's rosters; and each role's nav."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.accounts import service as accounts
from server.accounts.models import OrgKind, Role, Specialty, User
from server.audit.models import AuditEvent
from server.errors import AppError
from tests.factories import (
    TEST_PASSWORD,
    login,
    make_organisation,
    make_specialty,
    make_user,
    unique,
)

HTML = {"Accept": "text/html"}


def events(db: Session, action: str, object_id: object) -> list[AuditEvent]:
    return list(
        db.exec(
            select(AuditEvent).where(
                AuditEvent.action == action, AuditEvent.object_id == str(object_id)
            )
        ).all()
    )


def hospital_with_admin(db: Session) -> tuple[User, User]:
    hospital = make_organisation(db, kind=OrgKind.HOSPITAL, is_hub=True)
    admin = make_user(db, Role.ADMIN, organisation=hospital)
    colleague = make_user(db, Role.SPECIALIST, organisation=hospital)
    return admin, colleague


def test_deactivate_ends_access_and_reactivate_restores_it(
    client: TestClient, other_client: TestClient, db: Session
) -> None:
    admin, colleague = hospital_with_admin(db)
    login(client, admin)
    login(other_client, colleague)
    assert other_client.get("/api/me").status_code == 200

    off = client.post(f"/api/users/{colleague.id}/deactivate")
    assert off.status_code == 200 and off.json()["active"] is False
    assert other_client.get("/api/me").status_code == 401  # the open session stops at once
    assert len(events(db, "user.deactivate", colleague.id)) == 1
    # Deactivating twice changes nothing and records nothing more.
    assert client.post(f"/api/users/{colleague.id}/deactivate").status_code == 200
    assert len(events(db, "user.deactivate", colleague.id)) == 1

    on = client.post(f"/api/users/{colleague.id}/reactivate")
    assert on.status_code == 200 and on.json()["active"] is True
    assert len(events(db, "user.reactivate", colleague.id)) == 1
    login(other_client, colleague)
    assert other_client.get("/api/me").status_code == 200


def test_admin_cannot_touch_another_organisations_user_or_themself(
    client: TestClient, db: Session
) -> None:
    admin, _ = hospital_with_admin(db)
    stranger = make_user(db, Role.GP)
    login(client, admin)
    for verb in ("deactivate", "reactivate"):
        response = client.post(f"/api/users/{stranger.id}/{verb}")
        assert response.status_code == 404
    assert client.post("/api/users/999999999/deactivate").status_code == 404
    page = client.post(f"/admin/users/{stranger.id}/active", data={"active": "false"}, headers=HTML)
    assert page.status_code == 404
    db.refresh(stranger)
    assert stranger.active and events(db, "user.deactivate", stranger.id) == []

    refused = client.post(f"/api/users/{admin.id}/deactivate")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "self_deactivation"
    db.refresh(admin)
    assert admin.active


def test_only_admins_manage_users_and_specialties(client: TestClient, db: Session) -> None:
    gp = make_user(db, Role.GP)
    colleague = make_user(db, Role.GP, organisation=None)
    login(client, gp)
    assert client.post(f"/api/users/{colleague.id}/deactivate").status_code == 403
    body = {"code": unique("x").replace("-", "_"), "name_ko": "가", "name_en": "A"}
    assert client.post("/api/specialties", json=body).status_code == 403
    assert client.get("/admin/users", headers=HTML).status_code == 403
    assert db.exec(select(Specialty).where(Specialty.code == body["code"])).first() is None


def test_create_specialty_api_validates_before_writing(client: TestClient, db: Session) -> None:
    admin, _ = hospital_with_admin(db)
    login(client, admin)
    code = "sp_" + unique("c").replace("-", "_")
    created = client.post(
        "/api/specialties",
        json={"code": code.upper(), "name_ko": "신장내과", "name_en": "Nephrology"},
    )
    assert created.status_code == 201 and created.json()["code"] == code
    assert len(events(db, "specialty.create", created.json()["id"])) == 1

    again = client.post("/api/specialties", json={"code": code, "name_ko": "x", "name_en": "y"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_code"
    bad_cases = [
        {"code": "1abc", "name_ko": "가", "name_en": "A"},
        {"code": "ok code", "name_ko": "가", "name_en": "A"},
        {"code": "okcode_" + unique("z").replace("-", "_"), "name_ko": " ", "name_en": "A"},
        {"code": "x" * 41, "name_ko": "가", "name_en": "A"},
        {"name_ko": "가", "name_en": "A"},
    ]
    before = len(db.exec(select(Specialty)).all())
    for bad in bad_cases:
        response = client.post("/api/specialties", json=bad)
        assert response.status_code == 422, bad
    assert len(db.exec(select(Specialty)).all()) == before


def test_users_page_lists_creates_and_refuses_bad_input(client: TestClient, db: Session) -> None:
    admin, colleague = hospital_with_admin(db)
    stranger = make_user(db, Role.ADMIN)
    specialty = make_specialty(db)
    login(client, admin)
    page = client.get("/admin/users", headers=HTML)
    assert page.status_code == 200
    assert colleague.email in page.text and stranger.email not in page.text
    assert f'action="/admin/users/{colleague.id}/active"' in page.text
    assert f'action="/admin/users/{admin.id}/active"' not in page.text  # not oneself

    email = f"{unique('new')}@test.example"
    good = {
        "name": "박하늘",
        "email": email,
        "role": "specialist",
        "specialty_id": str(specialty.id),
        "locale": "ko",
        "password": TEST_PASSWORD,
    }
    bad_forms = [
        ({**good, "password": "short"}, 422),
        ({**good, "email": "not-an-email"}, 422),
        ({**good, "role": "surgeon"}, 422),
        ({**good, "specialty_id": ""}, 422),  # a specialist needs a specialty
        ({**good, "specialty_id": "abc"}, 422),
        ({**good, "email": colleague.email}, 409),
        ({**good, "name": ""}, 422),
    ]
    for form, status in bad_forms:
        refused = client.post("/admin/users", data=form, headers=HTML)
        assert refused.status_code == status, form
        assert 'id="form-error"' in refused.text or status == 422
    assert db.exec(select(User).where(User.email == email)).first() is None

    created = client.post("/admin/users", data=good, headers=HTML, follow_redirects=False)
    assert created.status_code == 303 and created.headers["location"] == "/admin/users"
    new = db.exec(select(User).where(User.email == email)).one()
    assert new.organisation_id == admin.organisation_id and new.specialty_id == specialty.id
    assert len(events(db, "user.create", new.id)) == 1

    off = client.post(
        f"/admin/users/{new.id}/active", data={"active": "false"}, follow_redirects=False
    )
    assert off.status_code == 303
    db.refresh(new)
    assert not new.active
    client.post(f"/admin/users/{new.id}/active", data={"active": "true"}, follow_redirects=False)
    db.refresh(new)
    assert new.active


def test_specialties_and_organisations_pages(client: TestClient, db: Session) -> None:
    admin, _ = hospital_with_admin(db)
    other = make_organisation(db)
    login(client, admin)
    orgs = client.get("/admin/organisations", headers=HTML)
    assert orgs.status_code == 200
    assert f'id="org-{admin.organisation_id}"' in orgs.text and f'id="org-{other.id}"' in orgs.text

    code = "pg_" + unique("s").replace("-", "_")
    refused = client.post(
        "/admin/specialties", data={"code": "!!", "name_ko": "가", "name_en": "A"}, headers=HTML
    )
    assert refused.status_code == 422 and 'id="form-error"' in refused.text
    created = client.post(
        "/admin/specialties",
        data={"code": code, "name_ko": "감염내과", "name_en": "Infectious diseases"},
        follow_redirects=False,
    )
    assert created.status_code == 303
    listing = client.get("/admin/specialties", headers=HTML)
    assert code in listing.text and "Infectious diseases" in listing.text
    assert db.exec(select(Specialty).where(Specialty.code == "!!")).first() is None


def test_rosters_page_links_to_own_specialists_only(client: TestClient, db: Session) -> None:
    admin, colleague = hospital_with_admin(db)
    elsewhere = make_user(db, Role.SPECIALIST)
    login(client, admin)
    page = client.get("/admin/rosters", headers=HTML)
    assert page.status_code == 200
    assert f"/schedule/roster?specialist_id={colleague.id}" in page.text
    assert f"/schedule/roster?specialist_id={elsewhere.id}" not in page.text
    roster = client.get(f"/schedule/roster?specialist_id={colleague.id}", headers=HTML)
    assert roster.status_code == 200 and colleague.name in roster.text
    other = client.get(f"/schedule/roster?specialist_id={elsewhere.id}", headers=HTML)
    assert other.status_code == 404


def test_each_role_nav_links_to_what_it_can_use(client: TestClient, db: Session) -> None:
    expected = {
        Role.GP: ["/consults/new", "/consults", "/schedule/appointments"],
        Role.SPECIALIST: [
            "/schedule/appointments",
            "/schedule/roster",
            "/schedule/roster#calendar",
            "/consults",
        ],
        Role.ADMIN: [
            "/admin/users",
            "/admin/organisations",
            "/admin/specialties",
            "/admin/rosters",
            "/admin/audit",
        ],
    }
    for role, links in expected.items():
        client.cookies.clear()
        login(client, make_user(db, role))
        page = client.get("/", headers=HTML)
        assert page.status_code == 200
        nav = page.text.split("<nav", 1)[1].split("</nav>", 1)[0]
        for href in links:
            assert f'href="{href}"' in nav, (role, href)
        for href in links:
            target = client.get(href.split("#")[0], headers=HTML)
            assert target.status_code == 200, (role, href)


def test_set_active_and_create_specialty_rules_without_http(db: Session) -> None:
    admin, colleague = hospital_with_admin(db)
    stranger = make_user(db, Role.GP)
    with pytest.raises(AppError) as absent:
        accounts.set_active(db, admin, stranger.id or 0, False)
    assert absent.value.status == 404
    with pytest.raises(AppError) as self_off:
        accounts.set_active(db, admin, admin.id or 0, False)
    assert self_off.value.code == "self_deactivation"
    assert accounts.set_active(db, admin, colleague.id or 0, False).active is False
    db.commit()
    assert len(events(db, "user.deactivate", colleague.id)) == 1
    with pytest.raises(AppError) as bad:
        accounts.create_specialty(db, code="Bad Code", name_ko="가", name_en="A")
    assert bad.value.code == "invalid_code"
