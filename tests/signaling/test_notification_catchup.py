"""Property: whatever the order of commits, polls, arrivals and reconnects, the page
handles every committed notification exactly once (the real UserChannel, a model outbox
that commits out of id order, the inbox's catch-up rule)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings

from tests.signaling.catchup import SCRIPTS, catch_up, committed_for_page, run_script


@settings(max_examples=400, deadline=None)
@given(SCRIPTS)
def test_every_notification_reaches_the_page_exactly_once(script: list[tuple[str, int]]) -> None:
    gate, page = asyncio.run(run_script(script))
    assert sorted(page.handled) == committed_for_page(gate)
    assert len(set(page.handled)) == len(page.handled)


def test_a_lower_id_committed_late_is_not_skipped() -> None:
    """The case of the issue: 1 and 2 in flight, 2 commits and is delivered, the page
    reconnects, then 1 commits: it still arrives."""
    script = [
        ("insert", 1),
        ("insert", 1),
        ("commit", 1),
        ("poll", 0),
        ("deliver", 4),
        ("drop", 0),
        ("reconnect", 0),
        ("commit", 0),
        ("poll", 0),
        ("deliver", 4),
    ]
    gate, page = asyncio.run(run_script(script))
    assert page.handled == [2, 1]


def test_the_rule_keeps_the_higher_floor_and_forgets_below_it() -> None:
    state, fresh = catch_up({"floor": 0, "seen": []}, {"id": 5, "floor": None})
    assert fresh and state == {"floor": 0, "seen": [5]}
    state, fresh = catch_up(state, {"id": 5, "floor": 3})
    assert not fresh and state == {"floor": 3, "seen": [5]}
    state, fresh = catch_up(state, {"id": 2, "floor": 6})
    assert not fresh and state == {"floor": 6, "seen": []}


def test_a_catch_up_read_before_a_poll_is_not_trusted() -> None:
    """The connect's early catch-up read (with the session) misses row 1, which commits
    before a poll that moves the floor past it while the page is not yet subscribed:
    the channel must read again rather than use the early rows."""
    script = [
        ("insert", 1),
        ("insert", 1),
        ("commit", 1),
        ("poll", 0),
        ("deliver", 4),
        ("drop", 0),
        ("prefetch", 0),
        ("commit", 0),
        ("tick", 40),
        ("poll", 0),
        ("reconnect", 0),
    ]
    gate, page = asyncio.run(run_script(script))
    assert sorted(page.handled) == [1, 2]
