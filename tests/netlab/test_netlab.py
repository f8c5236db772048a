"""The rural-link lab's short scenario: one profile through Dari's real call page.

Runs `python -m bench.netlab` (it makes a network namespace, so it needs root, as CI
has on these machines): two Chromium pages, relay-only ICE through coturn, the GP's
side through the impairing relay. Never skipped: without root, namespaces or coturn the
lab says why and this test fails with that message. `make netlab` runs every profile.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.netlab, pytest.mark.browser, pytest.mark.slow]

PROFILE = "cut-10s"


def run_lab(out: Path, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.netlab", "--out", str(out), "--timeout", "110", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=130,
        check=False,
    )
    assert result.returncode == 0, f"the network lab failed:\n{result.stderr[-3000:]}"
    rows: list[dict[str, Any]] = json.loads((out / "results.json").read_text())
    return rows


def test_call_survives_a_cut_through_turn_without_a_click(tmp_path: Path) -> None:
    # (The pre-call check is left to `make netlab`: the scenario stays under two minutes.)
    [row] = run_lab(tmp_path, "--no-precall", "--profiles", PROFILE)
    # Relay use: every selected candidate pair was relay-to-relay (getStats) ...
    assert row["candidate_types"] == ["relay"], row["candidate_types"]
    # ... coturn allocated and relayed the media (its log) ...
    assert row["coturn"]["allocations"] >= 2, row["coturn"]
    assert row["coturn"]["bytes_sent"] > 100_000, row["coturn"]
    # ... and the GP's side went through the impairing relay, which cut it.
    assert row["relay"]["up"]["sent"] > 500 and row["relay"]["down"]["sent"] > 500, row["relay"]
    assert row["relay"]["up"]["dropped_outage"] > 0, row["relay"]
    # Both pages heard and saw each other before the cut.
    assert row["first_audio_s"] is not None and row["first_video_s"] is not None
    assert (row["specialist_receives"]["fps"] or 0) > 5, row["specialist_receives"]
    # After the cut, media came back with nobody clicking, and nothing typed was lost.
    assert row["recovery_s"] is not None and row["recovery_s"] <= 10, row["recovery_s"]
    assert row["chat_kept"] is True
