"""The demo's twelve weeks of consult history and its regional-authority users.

Called from `server.demo.seed_demo` once the demo's people exist. History is sent by
clinics of its own (one per region, Seoul included, so urban and rural compare), each
with an inactive GP who never logs in: the demo's own clinics keep clean home pages.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from server.accounts import service as accounts
from server.accounts.models import Organisation, OrgKind, Region, Role, User
from server.clock import utcnow
from server.equity.history import Answerer, Requester, history_rows, insert_rows

HISTORY_WEEKS = 12
PER_WEEK = 60
SEED = 16

# (region code, Korean name, English name) of the clinics that sent the history.
HISTORY_CLINICS = [
    ("gangwon", "평창 진부 보건지소", "Pyeongchang Jinbu Health Subcentre"),
    ("jeonnam", "고흥 녹동 보건지소", "Goheung Nokdong Health Subcentre"),
    ("seoul", "서울 동대문 의원", "Seoul Dongdaemun Clinic"),
]
# (email, name, region code, Korean organisation, English organisation)
AUTHORITIES = [
    (
        "region.gangwon@dari.example",
        "정보건",
        "gangwon",
        "강원특별자치도 보건정책과",
        "Gangwon Provincial Health Policy Division",
    ),
    (
        "region.jeonnam@dari.example",
        "남도윤",
        "jeonnam",
        "전라남도 보건복지국",
        "Jeollanam-do Health and Welfare Bureau",
    ),
]


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the week holding `moment`."""
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def seed_authorities(session: Session, password: str) -> list[tuple[str, str, str]]:
    """The regional-authority organisations and one user each; (role, email, org) for printing."""
    logins = []
    for email, name, region_code, name_ko, name_en in AUTHORITIES:
        region = session.exec(select(Region).where(Region.code == region_code)).one()
        organisation = Organisation(
            name_ko=name_ko, name_en=name_en, kind=OrgKind.AUTHORITY, region_id=region.id or 0
        )
        session.add(organisation)
        session.flush()
        accounts.create_user(
            session,
            email=email,
            name=name,
            role=Role.REGION_AUTHORITY,
            organisation_id=organisation.id or 0,
            password=password,
        )
        logins.append((Role.REGION_AUTHORITY.value, email, name_en))
    return logins


def authority_logins() -> list[tuple[str, str, str]]:
    return [(Role.REGION_AUTHORITY.value, email, org) for email, _, _, _, org in AUTHORITIES]


def seed_history(session: Session, password: str, now: datetime | None = None) -> int:
    """Twelve weeks of finished consults ending with last week; returns how many."""
    now = now or utcnow()
    requesters = []
    for index, (region_code, name_ko, name_en) in enumerate(HISTORY_CLINICS):
        region = session.exec(select(Region).where(Region.code == region_code)).one()
        clinic = Organisation(
            name_ko=name_ko, name_en=name_en, kind=OrgKind.HEALTH_CENTRE, region_id=region.id or 0
        )
        session.add(clinic)
        session.flush()
        gp = accounts.create_user(
            session,
            email=f"history{index + 1}@dari.example",
            name=f"기록 {index + 1}",
            role=Role.GP,
            organisation_id=clinic.id or 0,
            password=password,
        )
        gp.active = False  # history's author: never logs in
        requesters.append(Requester(clinic.id or 0, gp.id or 0, region_code))
    specialists = session.exec(
        select(User).where(User.role == Role.SPECIALIST, col(User.active).is_(True))
    ).all()
    answerers = [
        Answerer(user.id or 0, user.organisation_id, user.specialty_id)
        for user in specialists
        if user.specialty_id is not None
    ]
    if not answerers:
        return 0
    start = week_start(now) - timedelta(weeks=HISTORY_WEEKS)
    rows = history_rows(
        random.Random(SEED),
        requesters=requesters,
        answerers=answerers,
        start=start,
        weeks=HISTORY_WEEKS,
        per_week=PER_WEEK,
        now=now,
    )
    return insert_rows(session, rows)


def seed_equity_demo(session: Session, password: str) -> None:
    """Everything the equity view's demo needs (the one call in server.demo)."""
    seed_authorities(session, password)
    seed_history(session, password)
