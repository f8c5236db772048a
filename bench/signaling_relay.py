"""Relay round-trip latency: Dari's signaling against a bare `websockets` relay.

    .venv/bin/python -m bench.signaling_relay [--messages 10000] [--runs 5]

Two clients in one room; A sends a small offer frame to B, B answers it, A
times the round trip. Both servers run in their own process, started in this
run, alternately; the figure that counts is the ratio of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from websockets.asyncio.client import ClientConnection, connect

from bench.signaling_servers import start, stop, token_for


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def dari_pair(port: int, room: str) -> tuple[ClientConnection, ClientConnection, str, str]:
    url = f"ws://127.0.0.1:{port}/ws/room"
    a = await connect(url)
    b = await connect(url)
    await a.send(json.dumps({"type": "join", "room": room, "token": token_for(1, room)}))
    a_id = json.loads(await a.recv())["peer_id"]
    await b.send(json.dumps({"type": "join", "room": room, "token": token_for(2, room)}))
    b_id = json.loads(await b.recv())["peer_id"]
    await a.recv()  # peer-joined
    return a, b, a_id, b_id


async def bare_pair(port: int, room: str) -> tuple[ClientConnection, ClientConnection, str, str]:
    url = f"ws://127.0.0.1:{port}"
    a = await connect(url)
    b = await connect(url)
    for ws in (a, b):
        await ws.send(json.dumps({"room": room}))
        await ws.recv()
    return a, b, "a", "b"


async def round_trips(kind: str, port: int, messages: int) -> list[float]:
    pair = dari_pair if kind == "dari" else bare_pair
    a, b, a_id, b_id = await pair(port, f"bench-{time.monotonic_ns()}")
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    servers = {kind: start(kind) for kind in ("bare", "dari")}
    results: dict[str, list[tuple[float, float]]] = {"bare": [], "dari": []}
    try:
        for run in range(args.runs):
            for kind in ("bare", "dari"):
                samples = asyncio.run(round_trips(kind, servers[kind][1], args.messages))
                results[kind].append((percentile(samples, 0.5), percentile(samples, 0.99)))
                print(
                    f"run {run + 1} {kind:>4}: p50 {results[kind][-1][0]:.3f} ms"
                    f"  p99 {results[kind][-1][1]:.3f} ms"
                )
    finally:
        for process, _ in servers.values():
            stop(process)
    summary = {
        kind: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for kind, runs in results.items()
    }
    print(f"\n{args.messages} round trips x {args.runs} runs, median of runs:")
    for kind, (p50, p99) in summary.items():
        print(f"  {kind:>4}: p50 {p50:.3f} ms  p99 {p99:.3f} ms")
    print(
        f"  ratio dari/bare: p50 {summary['dari'][0] / summary['bare'][0]:.2f}x"
        f"  p99 {summary['dari'][1] / summary['bare'][1]:.2f}x"
    )


if __name__ == "__main__":
    main()
