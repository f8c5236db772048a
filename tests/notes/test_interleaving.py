"""Non-interleaving: writers typing at the same or neighbouring places keep their runs whole.

Each writer types keystroke by keystroke at its caret (and backspaces over its own last
keystroke) while delivery is delayed, reordered, dropped and resent. Properties, for
two and for three writers, ≥500 generated cases each: convergence, every surviving
insertion kept exactly once, and every writer's surviving keystrokes contiguous and in
the order typed (docs/notes.md, "Non-interleaving").
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.notes.ot import TextOperation, transform_caret
from tests.notes.sim import START, Runs, Step, type_runs

ACTIONS = ["type", "type", "type", "back", "up", "up", "down", "down", "drop", "rejoin", "stale"]


def scripts(n: int) -> st.SearchStrategy[list[Step]]:
    step = st.tuples(st.sampled_from(ACTIONS), st.integers(0, n - 1), st.integers(0, 5))
    return st.lists(step, min_size=20, max_size=150)


def check(runs: Runs) -> None:
    net = runs.net
    final = net.server.doc
    # Convergence, and nobody is left waiting.
    assert all(c.doc == final for c in net.clients)
    assert all(c.state == "synchronized" for c in net.clients)
    # Every surviving insertion kept, exactly once; the original text untouched.
    assert len(final) == len(set(final))
    survivors = [runs.survivors(i) for i in range(len(net.clients))]
    assert sorted(final) == sorted(START + "".join(survivors))
    assert "".join(c for c in final if c in START) == START
    # No run interleaved: each writer's survivors are one contiguous piece, in order.
    for i, run in enumerate(survivors):
        assert run in final, f"writer {i}'s run {run!r} is interleaved in {final!r}"
    # Every caret ends where its writer stopped typing: right after its run.
    for i, run in enumerate(survivors):
        if run:
            assert net.carets[i] == final.index(run) + len(run)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.permutations(["a7", "k2", "x0"]).map(lambda p: p[:2]),
    starts=st.lists(st.integers(1, 3), min_size=2, max_size=2),
    script=scripts(2),
)
def test_two_writers_never_interleave(
    ids: list[str], starts: list[int], script: list[Step]
) -> None:
    check(type_runs(ids, starts, script))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.permutations(["a7", "k2", "x0"]),
    starts=st.lists(st.integers(1, 3), min_size=3, max_size=3),
    script=scripts(3),
)
def test_three_writers_never_interleave(
    ids: list[str], starts: list[int], script: list[Step]
) -> None:
    check(type_runs(ids, starts, script))


@settings(max_examples=500, deadline=None)
@given(
    ids=st.permutations(["a7", "k2", "x0"]),
    starts=st.lists(st.integers(2, 2), min_size=3, max_size=3),
    script=scripts(3),
)
def test_three_writers_at_the_very_same_place(
    ids: list[str], starts: list[int], script: list[Step]
) -> None:
    """The commonest case (everyone at the end of the same line), drawn on its own."""
    check(type_runs(ids, starts, script))


def test_the_reported_garble_does_not_happen() -> None:
    """GP types "GP", the specialist "전문" at the same place, each keystroke crossing the
    other's in flight: before the fix this read "G전P문"."""
    script: list[Step] = []
    for _ in range(2):
        script += [("type", 0, 0), ("type", 1, 0), ("up", 0, 0), ("up", 1, 0)]
        script += [("down", 0, 0), ("down", 1, 0), ("down", 0, 0), ("down", 1, 0)]
        script += [("up", 0, 0), ("up", 1, 0)]
    runs = type_runs(["k2", "a7"], [4, 4], script)
    check(runs)
    assert runs.net.server.doc in (
        START + runs.survivors(0) + runs.survivors(1),
        START + runs.survivors(1) + runs.survivors(0),
    )


@pytest.mark.parametrize(
    ("ids", "script"),
    [
        # Found by the seeded cases of the browser test: the writer with the higher id
        # backspaced over all of its run, its caret ended at the end of the other's run,
        # and it typed there again while the other went on (tie-break by arrival order).
        (
            ["a7", "k2"],
            [("type", 1, 0), ("up", 1, 0), ("type", 0, 0), ("up", 0, 0), ("down", 1, 0)]
            + [("down", 1, 0), ("back", 1, 0), ("type", 1, 0), ("down", 0, 0), ("type", 0, 0)],
        ),
        # The caret stuck to the left of an insertion that goes before its writer's next
        # keystroke (caret rule disagreeing with the tie-break).
        (
            ["a7", "k2", "x0"],
            [("type", 1, 0), ("up", 1, 0), ("type", 2, 0), ("type", 1, 0), ("down", 1, 0)]
            + [("up", 1, 0), ("down", 2, 0), ("back", 2, 0), ("down", 2, 0), ("type", 2, 0)],
        ),
    ],
)
def test_found_cases(ids: list[str], script: list[Step]) -> None:
    check(type_runs(ids, [3] * len(ids), script))


@pytest.mark.parametrize(
    ("op", "index", "before", "expect"),
    [
        ([2, "xy", 1], 2, False, 2),  # an insertion that goes after my next keystroke
        ([2, "xy", 1], 2, True, 4),  # one that goes before it (or my own)
        ([1, "xy", 2], 2, False, 4),
        ([3, "xy"], 2, False, 2),
        ([1, -2], 2, False, 1),
        ([-3], 2, False, 0),
    ],
)
def test_caret_rule(op: list[int | str], index: int, before: bool, expect: int) -> None:
    assert transform_caret(TextOperation.from_json(op), index, before=before) == expect
