"""Demo rosters: weekday consult hours and on-call for every demo specialist, and
round-the-clock on-call cover in every region: the first specialist of each specialty in
a region is on call every day, all day, so an urgent request can be tried at any hour.

`dari demo` (server/demo.py) calls `seed_demo_rosters` for the demo specialists.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, time, timedelta

from sqlmodel import Session, col, select

from server.accounts.models import Organisation, Role, User
from server.clock import utcnow
from server.scheduling.models import RosterRule, RuleKind


def seed_demo_rosters(
    session: Session, today: date | None = None, only: Collection[int] | None = None
) -> int:
    """Give specialists without a roster weekday consult hours and on-call; returns how many."""
    today = today or utcnow().date()
    valid_from = today - timedelta(days=today.weekday())  # this week's Monday
    with_rules = set(session.exec(select(RosterRule.specialist_id)).all())
    query = select(User).where(User.role == Role.SPECIALIST, col(User.active).is_(True))
    if only is not None:
        query = query.where(col(User.id).in_(list(only)))
    specialists = session.exec(query.order_by(col(User.id))).all()
    covered = set(
        session.exec(
            select(Organisation.region_id, User.specialty_id)
            .join(User, col(User.organisation_id) == col(Organisation.id))
            .where(col(User.id).in_(with_rules))
        ).all()
    )
    seeded = 0
    for index, specialist in enumerate(specialists):
        if specialist.id in with_rules:
            continue
        organisation = session.get(Organisation, specialist.organisation_id)
        cover = (organisation.region_id if organisation else 0, specialist.specialty_id)
        round_the_clock = cover not in covered
        covered.add(cover)
        # Mornings for some, afternoons for others, so the demo search shows variety.
        hours = (time(9, 0), time(12, 0)) if index % 2 == 0 else (time(14, 0), time(17, 0))
        for weekday in range(5):
            session.add(
                RosterRule(
                    specialist_id=specialist.id or 0,
                    weekday=weekday,
                    start_time=hours[0],
                    end_time=hours[1],
                    slot_minutes=20,
                    kind=RuleKind.CONSULT,
                    valid_from=valid_from,
                )
            )
        # The region's first of a specialty every day; the others one weekday, all day.
        oncall_days = (
            list(range(7)) if round_the_clock else [index % 5] + ([5, 6] if index == 0 else [])
        )
        for weekday in oncall_days:
            session.add(
                RosterRule(
                    specialist_id=specialist.id or 0,
                    weekday=weekday,
                    start_time=time(0, 0),
                    end_time=time(0, 0),
                    slot_minutes=60,
                    kind=RuleKind.ONCALL,
                    valid_from=valid_from,
                )
            )
        seeded += 1
    session.flush()
    return seeded
