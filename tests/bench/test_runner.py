"""`python -m bench` (make bench): every benchmark module is run, each bounded in time."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

import bench.__main__ as runner


def test_every_benchmark_module_is_in_the_runner() -> None:
    # A new bench/<name>.py must be added to the table (or to HELPERS) to be run.
    assert runner.discovered() == sorted(runner.BENCHMARKS)
    for name, sizes in runner.BENCHMARKS.items():
        assert set(sizes) == set(runner.SIZES), name


@pytest.mark.slow  # starts every benchmark module with --help
def test_each_command_is_accepted_by_its_benchmark() -> None:
    """Every option the runner passes exists in the benchmark's own parser."""
    for name in runner.BENCHMARKS:
        helped = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", "--help"],
            cwd=runner.ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert helped.returncode == 0, helped.stderr
        for size in runner.SIZES:
            options = [a for a in runner.BENCHMARKS[name][size] if a.startswith("--")]
            for option in options:
                assert option in helped.stdout, (name, size, option)


def test_list_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--list", "--size", "quick", "--only", "slots", "notes"]) == 0
    out = capsys.readouterr().out
    assert "-m bench.slots --runs 3" in out and "-m bench.notes --updates 50" in out


def test_a_benchmark_past_its_time_is_stopped(tmp_path: Path) -> None:
    log = io.StringIO()
    code, seconds = runner.run_one(
        [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
        timeout=1.5,
        log=log,
    )
    assert code is None and seconds < 30
    assert "started" in log.getvalue()
    code, _ = runner.run_one([sys.executable, "-c", "print('done')"], timeout=30, log=log)
    assert code == 0 and "done" in log.getvalue()
