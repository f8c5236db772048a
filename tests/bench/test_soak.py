"""The soak's bookkeeping (bench/soak.py): what counts as lost, duplicated or overdue."""

from __future__ import annotations

import time

from bench import soak
from server.calls.service import user_key
from signaling import tokens


def test_lost_duplicated_and_untagged_frames_are_counted() -> None:
    ledger = soak.Ledger()
    offer = ledger.next_seq(1)
    chat = ledger.next_seq(2)  # a chat reaches both peers
    lost = ledger.next_seq(1)
    ledger.arrived(offer, timed=True)
    ledger.arrived(offer, timed=True)  # delivered twice
    ledger.arrived(chat, timed=False)  # the author's own copy
    ledger.arrived(chat, timed=True)
    ledger.untagged_sent[("r0-gp", "end-of-candidates")] += 2
    ledger.untagged_got[("r0-gp", "end-of-candidates")] += 1
    assert ledger.frames_sent() == 1 + 2 + 1 + 2
    assert ledger.frames_delivered() == 1 + 2 + 0 + 1
    assert ledger.duplicates() == 1
    assert len(ledger.all_latencies) == 3  # the author's copy of a chat is not timed
    ledger.sent_at[lost] = time.perf_counter() - 10
    assert ledger.overdue(5.0) == 1  # only the frame sent 10 s ago, not the fresh ones


def test_join_tokens_carry_the_server_claims_for_the_room() -> None:
    token = soak.join_token((7, "gp 7"), "room-a")
    claims = tokens.verify_join(soak.SECRET, token)
    assert claims is not None
    assert claims["r"] == "room-a"
    assert claims["k"] == user_key(7)
    assert (claims["u"], claims["t"]) == (7, "user")
    assert tokens.verify_join("another-secret", token) is None


def test_the_minute_row_has_a_cell_per_column() -> None:
    sample = soak.Sample(1, 10, 9, 1, 2.5, 30.0, "3 / 3, 500", [140.0, 141.0], [20.0, 19.0])
    header = soak.HEADER.splitlines()[0]
    assert soak.row(sample).count("|") == header.count("|")
    assert "| 140.0 | 141.0 |" in soak.row(sample)
