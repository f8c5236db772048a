"""seed_demo_rosters gives the demo specialists bookable hours, once."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, func, select

from server.clock import utcnow
from server.scheduling import search
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
