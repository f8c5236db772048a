"""Small typed factories: each call makes new, unique rows, so tests can share one database."""

from __future__ import annotations

import itertools
from functools import lru_cache

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.accounts.security import hash_password
from server.consults.models import ConsultRequest, ConsultStatus

TEST_PASSWORD = "test-password-42"
_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{id(_counter) % 997}"


@lru_cache(maxsize=1)
def _test_password_hash() -> str:
    # argon2 is slow on purpose; hash the shared test password once per run.
    return hash_password(TEST_PASSWORD)


def make_region(db: Session, code: str | None = None) -> Region:
    code = code or unique("region")
    region = Region(code=code, name_ko=f"지역 {code}", name_en=f"Region {code}")
    db.add(region)
    db.commit()
    return region


def make_organisation(
    db: Session,
    *,
    kind: OrgKind = OrgKind.CLINIC,
    region: Region | None = None,
    is_hub: bool = False,
    timezone: str = "Asia/Seoul",
) -> Organisation:
    region = region or make_region(db)
    name = unique(kind.value)
    organisation = Organisation(
        name_ko=f"{name} 의원",
        name_en=f"{name} clinic",
        kind=kind,
        region_id=region.id or 0,
        is_hub=is_hub,
        timezone=timezone,
    )
    db.add(organisation)
    db.commit()
    return organisation


def make_specialty(db: Session, code: str | None = None) -> Specialty:
    code = code or unique("specialty")
    specialty = Specialty(code=code, name_ko=f"전문 {code}", name_en=f"Specialty {code}")
    db.add(specialty)
    db.commit()
    return specialty


def make_user(
    db: Session,
    role: Role = Role.GP,
    *,
    organisation: Organisation | None = None,
    specialty: Specialty | None = None,
    active: bool = True,
) -> User:
    if organisation is None:
        kind = OrgKind.CLINIC if role == Role.GP else OrgKind.HOSPITAL
        organisation = make_organisation(db, kind=kind)
    if role == Role.SPECIALIST and specialty is None:
        specialty = make_specialty(db)
    user = User(
        email=f"{unique(role.value)}@test.example",
        name=unique("이름"),
        password_hash=_test_password_hash(),
        role=role,
        organisation_id=organisation.id or 0,
        specialty_id=specialty.id if specialty else None,
        active=active,
    )
    db.add(user)
    db.commit()
    return user


def make_consult_row(
    db: Session,
    requester: User,
    specialty_id: int,
    *,
    specialist: User | None = None,
    status: ConsultStatus = ConsultStatus.REQUESTED,
    **fields: object,
) -> ConsultRequest:
    """A consult row put straight into `status`, for tests of other domains.

    The consults domain's own tests go through its services; this only arranges data.
    """
    values: dict[str, object] = {
        "organisation_id": requester.organisation_id,
        "requester_id": requester.id or 0,
        "specialty_id": specialty_id,
        "assigned_specialist_id": specialist.id if specialist else None,
        "assigned_organisation_id": specialist.organisation_id if specialist else None,
        "status": status,
        "patient_chart_number": unique("chart"),
        "patient_age": 60,
        "patient_sex": "female",
        "clinical_question": "chest pain on exertion",
        **fields,
    }
    consult = ConsultRequest.model_validate(values)
    db.add(consult)
    db.commit()
    return consult


def login(client: TestClient, user: User, password: str = TEST_PASSWORD) -> str:
    """Log the client in as this user; its later requests carry the CSRF header."""
    csrf = client.get("/api/auth/csrf").json()["csrf_token"]
    response = client.post(
        "/api/auth/login",
        json={"email": user.email, "password": password},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    return token
