"""The rural-link lab (`make netlab`): Dari's call page over each profile's link.

    sudo .venv/bin/python -m bench.netlab                       # every profile, ~10 min
    .venv/bin/python -m bench.netlab --profiles mobile-weak --seconds 20

Needs root (network namespaces) and Debian's coturn. It makes a namespace with a veth
pair on 192.0.2.0/24, runs itself again inside it (`--inside`), prints one JSON line
per profile and a Markdown table, writes var/netlab/results.json, and deletes the
namespace. The whole run is bounded by --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.netlab.lab import LabError, namespace
from bench.netlab.profiles import PROFILES

ROOT = Path(__file__).resolve().parent.parent.parent


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.netlab")
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    parser.add_argument("--seconds", type=float, default=30.0, help="steady window per profile")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "netlab")
    parser.add_argument("--timeout", type=float, default=0.0, help="0: from the profiles")
    parser.add_argument(
        "--no-precall", action="store_true", help="skip the pre-call check before each call"
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help="print the table of a results.json, run nothing")
    return parser.parse_args(argv)


def budget(args: argparse.Namespace) -> float:
    total = 60.0
    for name in args.profiles:
        total += (
            (0 if args.no_precall else 30)
            + 60
            + PROFILES[name].cut_s * 1.2
            + (args.seconds if not PROFILES[name].cut_s else 90)
        )
    return total


def outside(args: argparse.Namespace) -> int:
    timeout = args.timeout or budget(args)
    name = f"dari-lab-{os.getpid()}"
    with namespace(name):
        command = [
            "ip",
            "netns",
            "exec",
            name,
            sys.executable,
            "-m",
            "bench.netlab",
            "--inside",
            "--seconds",
            str(args.seconds),
            "--out",
            str(args.out),
            *(["--no-precall"] if args.no_precall else []),
            "--profiles",
            *args.profiles,
        ]
        process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        # Stopped from outside: end the inner run (its own process group: coturn, Dari,
        # Chromium) before the namespace goes.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"netlab: stopped after {timeout:.0f} s", file=sys.stderr)
            return 3
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=15)


def _cell(v: Any) -> str:
    return "–" if v is None else str(v)


# The pre-call page's words, in the mode the call would take (low: the call's weak tier).
PRECALL_MODE = {
    "video": "video",
    "low": "video (low)",
    "audio": "audio only",
    "written": "continue in writing",
}


def precall_cell(r: dict[str, Any]) -> str:
    pc = r.get("precall") or {}
    said = PRECALL_MODE.get(pc.get("recommendation") or "", "no result")
    figures = (
        f"{_cell(pc.get('rtt_ms'))} ms, {_cell(pc.get('loss_pct'))} %; mic only "
        f"{_cell(pc.get('audio_rtt_ms'))} ms, {_cell(pc.get('audio_loss_pct'))} %"
    )
    return f"{said} ({figures}) / {_cell(r.get('sustained'))}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| profile | link | first audio / video (s) | concealment % (GP→S / S→GP) | RTT ms "
        "| jitter ms | video fps (GP→S / S→GP) | freezes (n, s) | audio only (on / back, s) "
        "| recovery after cut (s) | relay | what the GP saw "
        "| pre-call said (camera on: RTT, loss; mic only: RTT, loss) / call sustained |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, g = r["specialist_receives"] or {}, r["gp_receives"] or {}
        on = (
            r["gp_audio_only"][0]
            if r["gp_audio_only"][0] is not None
            else r["specialist_audio_only"][0]
        )
        back = (
            r["gp_audio_only"][1]
            if r["gp_audio_only"][1] is not None
            else r["specialist_audio_only"][1]
        )
        relay = (
            "yes"
            if r["candidate_types"] == ["relay"] and r["coturn"].get("bytes_sent", 0) > 0
            else "NO"
        )
        saw = "; ".join(r["gp_saw"]) or "nothing"
        lines.append(
            f"| {r['profile']} | {r['link']} "
            f"| {_cell(r['first_audio_s'])} / {_cell(r['first_video_s'])} "
            f"| {_cell(s.get('concealment_pct'))} / {_cell(g.get('concealment_pct'))} "
            f"| {_cell(s.get('rtt_ms'))} | {_cell(s.get('jitter_ms'))} "
            f"| {_cell(s.get('fps'))} / {_cell(g.get('fps'))} "
            f"| {_cell(s.get('freezes'))}, {_cell(s.get('freeze_s'))} "
            f"| {_cell(on)} / {_cell(back)} | {_cell(r['recovery_s'])} | {relay} | {saw} "
            f"| {precall_cell(r)} |"
        )
    return "\n".join(lines)


def inside(args: argparse.Namespace) -> int:
    from bench.netlab.harness import run_lab, summarise

    runs = run_lab(args.profiles, args.seconds, args.out, precall=not args.no_precall)
    rows = [summarise(run) for run in runs]
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print(table(rows), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    try:
        return inside(args) if args.inside else outside(args)
    except LabError as e:
        print(f"netlab: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
