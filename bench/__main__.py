"""Run every benchmark, one after the other (`make bench`).

    .venv/bin/python -m bench                  # modest sizes, a few minutes in all
    .venv/bin/python -m bench --size quick     # tiny sizes: a smoke test, under a minute or two
    .venv/bin/python -m bench --size full      # each benchmark's own defaults (the documented runs)
    .venv/bin/python -m bench --only slots notes --timeout 300

Each benchmark runs in its own process (`python -m bench.<name> ...`), bounded by
--timeout seconds (its whole process group is stopped when the time is up), and the
next one starts when it ends. Everything they print goes to the terminal and to a
results file under var/bench/; the figures that count are the ratios against the
baseline each benchmark measures in the same run. Copy them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent

# Modules in bench/ that `make bench` does not run: servers the benchmarks start, and the
# half-hour soak (`make soak`).
HELPERS = {"apps", "signaling_servers", "soak"}

# name -> arguments per size; "full" is each benchmark's own defaults.
BENCHMARKS: dict[str, dict[str, list[str]]] = {
    "slots": {
        "quick": ["--runs", "3", "--bookings", "5"],
        "modest": ["--runs", "50", "--bookings", "100"],
        "full": [],
    },
    "signaling_relay": {
        "quick": ["--messages", "100", "--runs", "1"],
        "modest": ["--messages", "2000", "--runs", "3"],
        "full": [],
    },
    "signaling_scale": {
        "quick": ["--connections", "20", "--rate", "20", "--seconds", "1"],
        "modest": ["--connections", "500", "--rate", "200", "--seconds", "5"],
        "full": [],
    },
    "signaling_idle": {
        "quick": ["--connections", "100", "--rounds", "100"],
        "modest": ["--connections", "1000", "--rounds", "1500"],
        "full": [],
    },
    "signaling_callsetup": {
        "quick": ["--runs", "1"],
        "modest": ["--runs", "3"],
        "full": [],
    },
    "equity": {
        "quick": ["--consults", "2000", "--runs", "3"],
        "modest": ["--consults", "20000", "--runs", "10"],
        "full": [],
    },
    "urgent_ring": {
        "quick": ["--specialists", "40", "--requests", "5"],
        "modest": ["--specialists", "200", "--requests", "50"],
        "full": [],
    },
    "notify_latency": {
        "quick": ["--samples", "30", "--poll-samples", "5"],
        "modest": ["--samples", "300", "--poll-samples", "20"],
        "full": [],
    },
    "notes": {
        "quick": ["--updates", "50", "--samples", "50"],
        "modest": ["--updates", "2000", "--samples", "500"],
        "full": [],
    },
    "assist": {
        "quick": ["--runs", "20"],
        "modest": ["--runs", "100"],
        "full": [],
    },
    "failover": {
        "quick": ["--runs", "1"],
        "modest": ["--runs", "3"],
        "full": [],
    },
}
SIZES = ("quick", "modest", "full")


def discovered() -> list[str]:
    """The benchmark modules present in bench/ (every .py but helpers and dunders)."""
    here = Path(__file__).resolve().parent
    return sorted(
        path.stem
        for path in here.glob("*.py")
        if not path.stem.startswith("_") and path.stem not in HELPERS
    )


def command(name: str, size: str) -> list[str]:
    return [sys.executable, "-m", f"bench.{name}", *BENCHMARKS[name][size]]


def _pump(stream: TextIO, sinks: list[TextIO]) -> None:
    for line in stream:
        for sink in sinks:
            sink.write(line)
            sink.flush()


def run_one(argv: list[str], timeout: float, log: TextIO) -> tuple[int | None, float]:
    """Run one benchmark in its own process group; (exit code or None on timeout, seconds)."""
    started = time.monotonic()
    with subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,  # its servers too are stopped on timeout
    ) as process:
        assert process.stdout is not None
        sinks = [sys.stdout, log]
        reader = threading.Thread(target=_pump, args=(process.stdout, sinks), daemon=True)
        reader.start()
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            _stop_group(process)
        reader.join(timeout=5)
    return code, time.monotonic() - started


def _stop_group(process: subprocess.Popen[str]) -> None:
    """SIGTERM the benchmark and everything it started; SIGKILL after 10 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every Dari benchmark in turn.")
    parser.add_argument("--size", choices=SIZES, default="modest")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME")
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds per benchmark (default 900)"
    )
    parser.add_argument("--results-dir", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    if args.list:
        for name in names:
            print(" ".join(["python", *command(name, args.size)[1:]]))
        return 0
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = args.results_dir / f"bench-{stamp}-{args.size}.txt"
    print(f"Results go to {results} (and this terminal); figures belong in docs/benchmarks.md.")
    summary: list[str] = []
    with results.open("w", encoding="utf-8") as log:
        for name in names:
            argv_one = command(name, args.size)
            banner = f"\n=== bench.{name} ({args.size}): {' '.join(argv_one[1:])}\n"
            sys.stdout.write(banner)
            log.write(banner)
            log.flush()
            code, seconds = run_one(argv_one, args.timeout, log)
            outcome = (
                f"timed out after {args.timeout:.0f} s"
                if code is None
                else ("ok" if code == 0 else f"failed (exit {code})")
            )
            summary.append(f"bench.{name}: {outcome}, {seconds:.0f} s")
        log.write("\n=== summary\n" + "\n".join(summary) + "\n")
    print("\n=== summary\n" + "\n".join(summary))
    print(f"Results: {results}")
    return 0 if all(line.split(": ")[1].startswith("ok") for line in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
