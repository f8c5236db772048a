"""The demo data set: believable Korean regions, clinics, hospitals and people."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from server.accounts import service as accounts
from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.equity import demo_history as equity_demo
from server.scheduling import demo as demo_rosters

# Demo logins are printed by `make run`; the password is the same for all demo users.
DEMO_PASSWORD = "dari-demo-2026"
# Specialists and administrators must use two-factor sign-in: the demo ones share this
# authenticator key (printed by `make run`; add it to any TOTP app, or run
# `python -c "import pyotp; print(pyotp.TOTP('<key>').now())"`). Never for real users.
DEMO_TOTP_SECRET = "DARIDEMODARIDEMODARIDEMODARIDEMO"

REGIONS = [
    ("gangwon", "강원특별자치도", "Gangwon"),
    ("jeonnam", "전라남도", "Jeollanam-do"),
    ("seoul", "서울특별시", "Seoul"),
]

SPECIALTIES = [
    ("cardiology", "심장내과", "Cardiology"),
    ("dermatology", "피부과", "Dermatology"),
    ("endocrinology", "내분비내과", "Endocrinology"),
    ("neurology", "신경과", "Neurology"),
    ("pediatrics", "소아청소년과", "Pediatrics"),
    ("psychiatry", "정신건강의학과", "Psychiatry"),
]

# (Korean name, English name, kind, region code, is hub)
ORGANISATIONS = [
    (
        "정선군 보건의료원",
        "Jeongseon County Health Centre",
        OrgKind.HEALTH_CENTRE,
        "gangwon",
        False,
    ),
    (
        "인제 기린면 보건지소",
        "Inje Girin Health Subcentre",
        OrgKind.HEALTH_CENTRE,
        "gangwon",
        False,
    ),
    (
        "신안 흑산도 보건지소",
        "Sinan Heuksando Health Subcentre",
        OrgKind.HEALTH_CENTRE,
        "jeonnam",
        False,
    ),
    ("완도 청산 의원", "Wando Cheongsan Clinic", OrgKind.CLINIC, "jeonnam", False),
    ("강원대학교병원", "Kangwon National University Hospital", OrgKind.HOSPITAL, "gangwon", True),
    ("전남대학교병원", "Chonnam National University Hospital", OrgKind.HOSPITAL, "jeonnam", True),
    ("서울국립중앙의료원", "National Medical Center Seoul", OrgKind.HOSPITAL, "seoul", False),
]


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    role: Role
    organisation: str  # English name
    specialty: str | None = None


USERS = [
    DemoUser("gp.jeongseon@dari.example", "김민준", Role.GP, "Jeongseon County Health Centre"),
    DemoUser("gp2.jeongseon@dari.example", "이서연", Role.GP, "Jeongseon County Health Centre"),
    DemoUser("gp.inje@dari.example", "박지호", Role.GP, "Inje Girin Health Subcentre"),
    DemoUser("gp.heuksan@dari.example", "최수아", Role.GP, "Sinan Heuksando Health Subcentre"),
    DemoUser("gp.cheongsan@dari.example", "정도윤", Role.GP, "Wando Cheongsan Clinic"),
    DemoUser("gp2.cheongsan@dari.example", "강하은", Role.GP, "Wando Cheongsan Clinic"),
    DemoUser(
        "cardio.kangwon@dari.example",
        "윤재현",
        Role.SPECIALIST,
        "Kangwon National University Hospital",
        "cardiology",
    ),
    DemoUser(
        "derm.kangwon@dari.example",
        "장유진",
        Role.SPECIALIST,
        "Kangwon National University Hospital",
        "dermatology",
    ),
    DemoUser(
        "neuro.kangwon@dari.example",
        "임성민",
        Role.SPECIALIST,
        "Kangwon National University Hospital",
        "neurology",
    ),
    DemoUser(
        "cardio.chonnam@dari.example",
        "한지민",
        Role.SPECIALIST,
        "Chonnam National University Hospital",
        "cardiology",
    ),
    DemoUser(
        "endo.chonnam@dari.example",
        "오승우",
        Role.SPECIALIST,
        "Chonnam National University Hospital",
        "endocrinology",
    ),
    DemoUser(
        "peds.chonnam@dari.example",
        "서예린",
        Role.SPECIALIST,
        "Chonnam National University Hospital",
        "pediatrics",
    ),
    DemoUser(
        "cardio.seoul@dari.example",
        "신동혁",
        Role.SPECIALIST,
        "National Medical Center Seoul",
        "cardiology",
    ),
    DemoUser(
        "derm.seoul@dari.example",
        "권나연",
        Role.SPECIALIST,
        "National Medical Center Seoul",
        "dermatology",
    ),
    DemoUser(
        "psych.seoul@dari.example",
        "황민서",
        Role.SPECIALIST,
        "National Medical Center Seoul",
        "psychiatry",
    ),
    DemoUser(
        "neuro.seoul@dari.example",
        "조현우",
        Role.SPECIALIST,
        "National Medical Center Seoul",
        "neurology",
    ),
    DemoUser(
        "admin.kangwon@dari.example", "배소윤", Role.ADMIN, "Kangwon National University Hospital"
    ),
    # Every clinic and hospital has its administrator: the GP side's reads, prints,
    # exports and decisions are audited for someone who can read them.
    DemoUser(
        "admin.jeongseon@dari.example", "문태윤", Role.ADMIN, "Jeongseon County Health Centre"
    ),
    DemoUser("admin.inje@dari.example", "유하린", Role.ADMIN, "Inje Girin Health Subcentre"),
    DemoUser(
        "admin.heuksan@dari.example", "남궁준", Role.ADMIN, "Sinan Heuksando Health Subcentre"
    ),
    DemoUser("admin.cheongsan@dari.example", "임채원", Role.ADMIN, "Wando Cheongsan Clinic"),
    DemoUser(
        "admin.chonnam@dari.example", "노은서", Role.ADMIN, "Chonnam National University Hospital"
    ),
    DemoUser("admin.seoul@dari.example", "하지훈", Role.ADMIN, "National Medical Center Seoul"),
]


def seed_demo(session: Session) -> bool:
    """Insert the demo once; returns False (and changes nothing) if it is already there."""
    if session.exec(select(User.id).where(User.email == USERS[0].email)).first() is not None:
        return False
    regions: dict[str, Region] = {}
    for code, name_ko, name_en in REGIONS:
        region = session.exec(select(Region).where(Region.code == code)).first()
        if region is None:
            region = Region(code=code, name_ko=name_ko, name_en=name_en)
            session.add(region)
        regions[code] = region
    specialties: dict[str, Specialty] = {}
    for code, name_ko, name_en in SPECIALTIES:
        specialty = session.exec(select(Specialty).where(Specialty.code == code)).first()
        if specialty is None:
            specialty = Specialty(code=code, name_ko=name_ko, name_en=name_en)
            session.add(specialty)
        specialties[code] = specialty
    session.flush()
    organisations: dict[str, Organisation] = {}
    for name_ko, name_en, kind, region_code, is_hub in ORGANISATIONS:
        organisation = Organisation(
            name_ko=name_ko,
            name_en=name_en,
            kind=kind,
            region_id=regions[region_code].id or 0,
            is_hub=is_hub,
        )
        session.add(organisation)
        organisations[name_en] = organisation
    session.flush()
    specialist_ids: list[int] = []
    for person in USERS:
        user = accounts.create_user(
            session,
            email=person.email,
            name=person.name,
            role=person.role,
            organisation_id=organisations[person.organisation].id or 0,
            specialty_id=specialties[person.specialty].id if person.specialty else None,
            password=DEMO_PASSWORD,
        )
        if person.role in (Role.SPECIALIST, Role.ADMIN):
            user.totp_secret = DEMO_TOTP_SECRET
            user.totp_enabled_at = user.created_at
            session.add(user)
        if person.role == Role.SPECIALIST:
            specialist_ids.append(user.id or 0)
    # Weekday consult hours and on-call, so slot search and urgent rings work at once.
    demo_rosters.seed_demo_rosters(session, only=specialist_ids)
    equity_demo.seed_equity_demo(session, DEMO_PASSWORD)
    return True


def demo_logins() -> list[tuple[str, str, str]]:
    """(role, email, organisation) of one demo user per role and place, for printing."""
    return [(p.role.value, p.email, p.organisation) for p in USERS] + equity_demo.authority_logins()
