"""The one consult loader, as plain function calls: each level it may be asked for lets in
exactly its viewers, and everyone else gets the same 404 as for an id that does not exist."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from server.accounts.models import Role, User
from server.consults.access import (
    Access,
    Need,
    Viewing,
    access_of,
    find_consult,
    grants,
    load_consult,
)
from server.consults.errors import ConsultNotFound
from server.consults.models import ConsultStatus
from tests.consults.helpers import make_consult, make_team
from tests.factories import make_user

# Which levels each relation to the consult satisfies.
EXPECTED: dict[Access, set[Need]] = {
    Access.CLINIC: {Need.VISIBLE, Need.PARTICIPANT, Need.CLINIC},
    Access.ASSIGNED: {Need.VISIBLE, Need.PARTICIPANT, Need.ASSIGNED},
    Access.POOL: {Need.VISIBLE},
    Access.ADMIN: {Need.VISIBLE},
    Access.NONE: set(),
}


@pytest.mark.parametrize("access", list(Access))
def test_each_relation_grants_exactly_its_levels(access: Access) -> None:
    assert {need for need in Need if grants(access, need)} == EXPECTED[access]


def _refused(db: Session, user: User, public_id: str, need: Need) -> ConsultNotFound:
    with pytest.raises(ConsultNotFound) as caught:
        load_consult(db, user, public_id, need=need)
    return caught.value


def test_loader_lets_in_each_viewer_only_at_their_levels(db: Session) -> None:
    team = make_team(db)
    taken = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    waiting = make_consult(db, team, ConsultStatus.REQUESTED)
    pool = make_user(db, Role.SPECIALIST, specialty=team.specialty)
    viewers = {
        "clinic gp": (team.gp, taken, Access.CLINIC),
        "assigned specialist": (team.specialist, taken, Access.ASSIGNED),
        "pool specialist": (pool, waiting, Access.POOL),
        "clinic admin": (make_user(db, Role.ADMIN, organisation=team.clinic), taken, Access.ADMIN),
        "hospital admin": (
            make_user(db, Role.ADMIN, organisation=team.hospital),
            taken,
            Access.ADMIN,
        ),
        "pool specialist, taken consult": (pool, taken, Access.NONE),
        "gp of another clinic": (make_user(db, Role.GP), taken, Access.NONE),
        "admin elsewhere": (make_user(db, Role.ADMIN), taken, Access.NONE),
    }
    for label, (user, consult, access) in viewers.items():
        assert access_of(user, consult) == access, label
        for need in Need:
            if need in EXPECTED[access]:
                viewing = load_consult(db, user, consult.public_id, need=need, ip="192.0.2.7")
                assert viewing == Viewing(consult, access, user, "192.0.2.7"), (label, need)
            else:
                refusal = _refused(db, user, consult.public_id, need)
                assert (refusal.status, refusal.code) == (404, "not_found"), (label, need)


def test_refused_and_unknown_look_the_same(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.IN_PROGRESS)
    stranger = make_user(db, Role.GP)
    for need in Need:
        for refusal in (
            _refused(db, team.gp, "no-such-consult", need),
            _refused(db, stranger, consult.public_id, need),
        ):
            answer = (refusal.status, refusal.code, refusal.message)
            assert answer == (404, "not_found", "not found"), need


def test_default_level_is_visible_and_the_lock_changes_nothing_else(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, ConsultStatus.REQUESTED)
    pool = make_user(db, Role.SPECIALIST, specialty=team.specialty)
    assert load_consult(db, pool, consult.public_id).access == Access.POOL
    locked = load_consult(db, team.gp, consult.public_id, need=Need.CLINIC, lock=True)
    assert locked.consult.id == consult.id
    db.rollback()  # end the transaction that holds the row lock (PostgreSQL)
    found = find_consult(db, consult.public_id, lock=True)
    assert found is not None and found.id == consult.id
    assert find_consult(db, "no-such-consult") is None
    db.rollback()
