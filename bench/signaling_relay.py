"""Relay round-trip latency: Dari's signaling against a bare `websockets` relay, same loop.

    .venv/bin/python -m bench.signaling_relay [--messages 10000] [--runs 5] [--asyncio]
        [--redis redis://127.0.0.1:6379/0]

Two clients in one room; A sends a small offer frame to B, B answers it, A
times the round trip. Every server runs in its own process, started in this run,
on uvloop (as `dari serve` runs): the bare relay, Dari alone, and two Dari
processes sharing Redis (under a key prefix of this run's own) with A on one and
B on the other; and, for the floor of that figure on the machine, the bare relay
split in two processes joined by a plain TCP connection. With --asyncio the bare
relay and Dari also run on asyncio's own loop, reported apart. Neither compresses
(Dari's sockets never do). The cases take turns within each run; the figures that
count are the ratios of the medians over runs: Dari / bare on the same loop, and
Dari across two processes / Dari on one (beside bare across two / bare on one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection, connect

from bench.signaling_servers import cpu_seconds, free_port, start, stop, token_for

Pair = tuple[ClientConnection, ClientConnection, str, str]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def dari_pair(port_a: int, port_b: int, room: str) -> Pair:
    a = await connect(f"ws://127.0.0.1:{port_a}/ws/room")
    b = await connect(f"ws://127.0.0.1:{port_b}/ws/room")
    await a.send(json.dumps({"type": "join", "room": room, "token": token_for(1, room)}))
    a_id = (await expect(a, "welcome"))["peer_id"]
    await b.send(json.dumps({"type": "join", "room": room, "token": token_for(2, room)}))
    b_id = (await expect(b, "welcome"))["peer_id"]
    await expect(a, "peer-joined")  # from the other process, when there are two
    return a, b, a_id, b_id


async def expect(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of that kind, passing over peer-joined frames (A hears of B
    before the offer exchange starts)."""
    while True:
        frame: dict[str, Any] = json.loads(await ws.recv())
        if frame.get("type") == kind:
            return frame
        if frame.get("type") != "peer-joined":
            raise RuntimeError(f"expected {kind!r}, got {frame}")


async def bare_pair(port_a: int, port_b: int, room: str) -> Pair:
    a = await connect(f"ws://127.0.0.1:{port_a}")
    b = await connect(f"ws://127.0.0.1:{port_b}")
    for ws in (a, b):
        await ws.send(json.dumps({"room": room}))
        await ws.recv()
    return a, b, "a", "b"


async def round_trips(
    pair: Callable[[int, int, str], Awaitable[Pair]], ports: tuple[int, int], messages: int
) -> list[float]:
    a, b, a_id, b_id = await pair(*ports, f"bench-{time.monotonic_ns()}")
    sdp = "v=0 " + "x" * 100
    offer = json.dumps({"type": "offer", "to": b_id, "sdp": sdp})
    answer = json.dumps({"type": "answer", "to": a_id, "sdp": sdp})

    async def answerer() -> None:
        for _ in range(messages):
            await b.recv()
            await b.send(answer)

    task = asyncio.create_task(answerer())
    samples = []
    for _ in range(messages):
        started = time.perf_counter()
        await a.send(offer)
        await a.recv()
        samples.append((time.perf_counter() - started) * 1000)
    await task
    await a.close()
    await b.close()
    return samples


@dataclass
class Case:
    name: str
    pair: Callable[[int, int, str], Awaitable[Pair]]
    ports: tuple[int, int]
    pids: tuple[int, ...]
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per round trip


def clear_prefix(url: str, prefix: str) -> None:
    """Drop the run's keys (rooms' presence and counters expire anyway, in an hour)."""
    from redis import Redis

    client = Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--asyncio", action="store_true", help="also both on asyncio's loop")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip")
    args = parser.parse_args()
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    processes = []
    cases: list[Case] = []

    def server(kind: str, *options: str) -> tuple[int, int]:
        process, port = start(kind, *options)
        processes.append(process)
        return port, process.pid

    try:
        for loop in ("uvloop", "asyncio") if args.asyncio else ("uvloop",):
            (bare, bare_pid), (dari, dari_pid) = (
                server("bare", "--loop", loop, "--no-deflate"),
                server("dari", "--loop", loop),
            )
            cases.append(Case(f"bare/{loop}", bare_pair, (bare, bare), (bare_pid,)))
            cases.append(Case(f"dari/{loop}", dari_pair, (dari, dari), (dari_pid,)))
        if args.redis:
            redis = ("--broker", args.redis, "--prefix", prefix)
            (first, pid1), (second, pid2) = server("dari", *redis), server("dari", *redis)
            cases.append(Case("dari/uvloop/redis x2", dari_pair, (first, second), (pid1, pid2)))
            # The floor of a process hop here: the bare relay split in two processes.
            link = f"{free_port()}"
            split = ("--no-deflate", "--link")
            (first, pid1) = server("bare", *split, f"listen:{link}")
            (second, pid2) = server("bare", *split, f"dial:{link}")
            cases.append(Case("bare/uvloop x2", bare_pair, (first, second), (pid1, pid2)))
        for run in range(args.runs):
            for case in cases:
                cpu_before = sum(cpu_seconds(pid) for pid in case.pids)
                samples = uvloop.run(round_trips(case.pair, case.ports, args.messages))
                cpu = sum(cpu_seconds(pid) for pid in case.pids) - cpu_before
                case.p50.append(percentile(samples, 0.5))
                case.p99.append(percentile(samples, 0.99))
                case.cpu_us.append(cpu / args.messages * 1e6)
                print(
                    f"run {run + 1} {case.name:>20}: p50 {case.p50[-1]:.3f} ms"
                    f"  p99 {case.p99[-1]:.3f} ms  server CPU {case.cpu_us[-1]:.0f} us/trip",
                    flush=True,
                )
    finally:
        for process in processes:
            stop(process)
        if args.redis:
            clear_prefix(args.redis, prefix)
    summary = {
        case.name: (statistics.median(case.p50), statistics.median(case.p99)) for case in cases
    }
    print(f"\n{args.messages} round trips x {args.runs} runs, median of runs:")
    for case in cases:
        p50, p99 = summary[case.name]
        cpu = statistics.median(case.cpu_us)
        print(
            f"  {case.name:>20}: p50 {p50:.3f} ms  p99 {p99:.3f} ms  server CPU {cpu:.0f} us/trip"
        )

    def ratio(label: str, over: str, under: str) -> None:
        if over in summary and under in summary:
            (p50_o, p99_o), (p50_u, p99_u) = summary[over], summary[under]
            print(f"  {label}: p50 {p50_o / p50_u:.2f}x  p99 {p99_o / p99_u:.2f}x")

    ratio("dari/bare on uvloop", "dari/uvloop", "bare/uvloop")
    ratio("dari/bare on asyncio", "dari/asyncio", "bare/asyncio")
    ratio("redis x2 / one process", "dari/uvloop/redis x2", "dari/uvloop")
    ratio("bare x2 / one process (the floor)", "bare/uvloop x2", "bare/uvloop")
    by_name = {case.name: case for case in cases}

    def per_run(label: str, over: str, under: str) -> None:
        if over in by_name and under in by_name:
            pairs = zip(by_name[over].p50, by_name[under].p50, strict=True)
            print(f"  {label} p50 per run: " + " ".join(f"{o / u:.2f}" for o, u in pairs))

    per_run("dari/bare on uvloop", "dari/uvloop", "bare/uvloop")
    per_run("dari/bare on asyncio", "dari/asyncio", "bare/asyncio")
    per_run("redis x2 / one process", "dari/uvloop/redis x2", "dari/uvloop")
    per_run("bare x2 / one process", "bare/uvloop x2", "bare/uvloop")


if __name__ == "__main__":
    main()
