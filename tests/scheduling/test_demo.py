"""seed_demo_rosters gives the demo specialists bookable hours, once."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, func, select

from server.accounts.models import Region, Specialty
from server.clock import utcnow
from server.demo import REGIONS, seed_demo
from server.scheduling import search, urgent
from server.scheduling.demo import seed_demo_rosters
from server.scheduling.models import RosterRule
from tests.factories import make_specialty
from tests.scheduling.factories import make_hospital, make_specialist


def test_seeded_rosters_offer_slots_and_seeding_is_idempotent(db: Session) -> None:
    specialty = make_specialty(db)
    specialist = make_specialist(db, make_hospital(db), specialty)
    assert seed_demo_rosters(db, only=[specialist.id or 0]) == 1
    db.commit()
    count = db.exec(
        select(func.count())
        .select_from(RosterRule)
        .where(RosterRule.specialist_id == specialist.id)
    ).one()
    assert count >= 6
    assert seed_demo_rosters(db, only=[specialist.id or 0]) == 0
    now = utcnow()
    found = search.search_slots(
        db,
        specialty_id=specialty.id or 0,
        start=now,
        end=now + timedelta(days=14),
        home_region_id=None,
    )
    assert found and all(s.candidate.specialist_id == specialist.id for s in found)


def test_demo_gives_every_region_round_the_clock_on_call_cover(db: Session) -> None:
    seed_demo(db)
    db.commit()
    demo_codes = [code for code, _, _ in REGIONS]
    regions = db.exec(select(Region).where(col(Region.code).in_(demo_codes))).all()
    assert len(regions) == len(demo_codes)
    specialties = db.exec(select(Specialty)).all()
    start = utcnow()
    # Every hour of a week, every region has a regional on-call specialist of some specialty.
    for hour in range(0, 7 * 24, 5):
        at = start + timedelta(hours=hour, minutes=7)
        for region in regions:
            covered = [
                s.code
                for s in specialties
                if any(o.regional for o in urgent.oncall_now(db, s.id or 0, at, region.id))
            ]
            assert covered, (region.code, at)
