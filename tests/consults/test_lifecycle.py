"""The whole transition table, allowed and refused, on both databases."""

from __future__ import annotations

import itertools

import pytest
from sqlmodel import Session, select

from server.accounts.models import User
from server.consults import lifecycle
from server.consults.errors import TransitionNotAllowed
from server.consults.lifecycle import TRANSITIONS, Party
from server.consults.models import ConsultEvent, ConsultRequest, ConsultStatus
from server.errors import Forbidden
from tests.consults.helpers import Team, make_consult, make_team

S = ConsultStatus
ALL_PAIRS = list(itertools.product(list(S), list(S)))


def actor_for(party: Party, team: Team) -> User | None:
    return {Party.CLINIC: team.gp, Party.SPECIALIST: team.specialist, Party.SYSTEM: None}[party]


def test_table_covers_every_status_and_the_documented_path() -> None:
    assert set(TRANSITIONS) == set(S)
    path = [
        S.DRAFT,
        S.REQUESTED,
        S.ACCEPTED,
        S.SCHEDULED,
        S.IN_PROGRESS,
        S.REPORT_PENDING,
        S.COMPLETED,
    ]
    for current, following in itertools.pairwise(path):
        assert following in TRANSITIONS[current]
    assert lifecycle.TERMINAL == {S.COMPLETED, S.DECLINED, S.CANCELLED}


def test_named_status_sets_agree_with_the_table() -> None:
    # Every status is a draft, open or closed, and only one of these.
    open_ = set(lifecycle.OPEN)
    assert len(lifecycle.OPEN) == len(open_)
    assert open_ | lifecycle.CLOSED | {S.DRAFT} == set(S)
    assert not open_ & lifecycle.CLOSED and S.DRAFT not in open_ | lifecycle.CLOSED
    # Closed means terminal: nothing follows it. A no-show may still be booked again.
    assert lifecycle.CLOSED == lifecycle.TERMINAL
    assert S.NO_SHOW in open_
    assert all(not TRANSITIONS[status] for status in lifecycle.CLOSED)
    assert lifecycle.BOOKABLE == {s for s in S if S.SCHEDULED in lifecycle.allowed_from(s)}
    assert lifecycle.OPEN_TO_POOL <= open_ and lifecycle.OPEN_TO_POOL < lifecycle.UNASSIGNED
    assert lifecycle.JOINABLE <= open_ and not lifecycle.JOINABLE & lifecycle.OPEN_TO_POOL
    # A report is written by the assigned specialist: never before someone took the case.
    assert not lifecycle.REPORT_WRITABLE & lifecycle.UNASSIGNED
    assert lifecycle.REPORT_WRITABLE - {S.COMPLETED} <= open_


def test_every_pair_is_allowed_or_refused_as_the_table_says(db: Session) -> None:
    team = make_team(db)
    allowed_count = refused_count = 0
    for current, target in ALL_PAIRS:
        consult = make_consult(db, team, current, signed_report=(current == S.REPORT_PENDING))
        parties = TRANSITIONS[current].get(target)
        if parties is None:
            with pytest.raises(TransitionNotAllowed) as refused:
                lifecycle.transition(db, consult, target, actor=team.gp, reason="test")
            assert refused.value.status == 409
            assert refused.value.extra["allowed"] == lifecycle.allowed_from(current)
            assert refused.value.field is None
            assert refused.value.params == {"current": current, "wanted": target}
            db.rollback()
            db.refresh(consult)
            assert consult.status == current
            refused_count += 1
            continue
        for party in sorted(parties):
            consult = make_consult(db, team, current, signed_report=(current == S.REPORT_PENDING))
            event = lifecycle.transition(
                db,
                consult,
                target,
                actor=actor_for(party, team),
                reason="because",
                specialist=team.specialist,
            )
            db.commit()
            stored = db.get(ConsultRequest, consult.id)
            assert stored is not None and stored.status == target
            assert (event.from_value, event.to_value, event.reason) == (current, target, "because")
            actor = actor_for(party, team)
            assert event.actor_id == (actor.id if actor else None)
            allowed_count += 1
    assert refused_count == len(ALL_PAIRS) - sum(len(m) for m in TRANSITIONS.values())
    assert allowed_count >= sum(len(m) for m in TRANSITIONS.values())


def test_wrong_party_is_refused_and_nothing_changes(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.REQUESTED)
    with pytest.raises(Forbidden):
        lifecycle.transition(db, consult, S.ACCEPTED, actor=team.gp, reason="")
    db.rollback()
    with pytest.raises(Forbidden):  # the system does not cancel on a clinic's behalf
        lifecycle.transition(db, consult, S.CANCELLED, actor=None, reason="x")
    db.rollback()
    stored = db.get(ConsultRequest, consult.id)
    assert stored is not None and stored.status == S.REQUESTED


def test_accepting_assigns_and_records_first_response(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.REQUESTED)
    lifecycle.transition(db, consult, S.ACCEPTED, actor=team.specialist)
    db.commit()
    stored = db.get(ConsultRequest, consult.id)
    assert stored is not None
    assert stored.assigned_specialist_id == team.specialist.id
    assert stored.assigned_organisation_id == team.hospital.id
    assert stored.first_response_at is not None
    events = db.exec(select(ConsultEvent).where(ConsultEvent.consult_id == consult.id)).all()
    assert [(e.from_value, e.to_value) for e in events] == [("requested", "accepted")]


def test_completing_needs_a_signed_report(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.REPORT_PENDING)
    with pytest.raises(Exception) as refused:
        lifecycle.transition(db, consult, S.COMPLETED, actor=team.gp, reason="done")
    assert getattr(refused.value, "code", "") == "report_not_signed"


def test_declining_needs_a_reason(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.REQUESTED)
    with pytest.raises(Exception) as refused:
        lifecycle.transition(db, consult, S.DECLINED, actor=team.specialist, reason="  ")
    assert getattr(refused.value, "code", "") == "reason_required"


def test_a_stale_copy_cannot_take_a_consult_twice(db: Session, database_url: str) -> None:
    from server.accounts.models import Role
    from server.db import engine_for
    from tests.factories import make_user

    team = make_team(db)
    consult = make_consult(db, team, S.REQUESTED)
    rival = make_user(db, Role.SPECIALIST, specialty=team.specialty)
    engine = engine_for(database_url)
    with Session(engine, expire_on_commit=False) as second:
        theirs = second.get(ConsultRequest, consult.id)  # read before the other accepts
        assert theirs is not None and theirs.status == S.REQUESTED
        second.commit()
    with Session(engine, expire_on_commit=False) as first:
        mine = first.get(ConsultRequest, consult.id)
        assert mine is not None
        lifecycle.transition(first, mine, S.ACCEPTED, actor=team.specialist)
        first.commit()
    with Session(engine, expire_on_commit=False) as second:
        theirs = second.merge(theirs, load=False)
        assert theirs.status == S.REQUESTED  # still the stale copy
        with pytest.raises(TransitionNotAllowed):
            lifecycle.transition(second, theirs, S.ACCEPTED, actor=rival)
        second.rollback()
    stored = db.get(ConsultRequest, consult.id)
    assert stored is not None
    db.refresh(stored)
    assert stored.assigned_specialist_id == team.specialist.id


def test_booking_from_the_pool_assigns_the_specialist(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.REQUESTED)
    with pytest.raises(Exception) as refused:
        lifecycle.transition(db, consult, S.SCHEDULED, actor=team.gp, reason="slot")
    assert getattr(refused.value, "code", "") == "specialist_required"
    lifecycle.transition(
        db, consult, S.SCHEDULED, actor=team.gp, reason="slot", specialist=team.specialist
    )
    db.commit()
    assert consult.assigned_specialist_id == team.specialist.id
    lifecycle.transition(db, consult, S.REQUESTED, actor=None, reason="appointment cancelled")
    db.commit()
    assert consult.assigned_specialist_id is None and consult.status == S.REQUESTED


def test_transition_takes_the_documented_positional_form(db: Session) -> None:
    team = make_team(db)
    consult = make_consult(db, team, S.REQUESTED)
    event = lifecycle.transition(db, consult, S.DECLINED, team.specialist, "not for remote care")
    assert (event.to_value, event.reason) == (S.DECLINED, "not for remote care")
