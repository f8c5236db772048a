"""Many connections on one process: memory per connection and latency under load.

    .venv/bin/python -m bench.signaling_scale [--connections 2000] [--rate 500] [--seconds 10]

Opens N authenticated connections (signed join tokens, checked as in production)
in N/2 rooms on one Dari signaling process, measures its resident memory per
connection, then relays `rate` messages per second between random pairs for a
few seconds and reports one-way latency p50/p99. The same is done against the
bare `websockets` relay in the same run (the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

from websockets.asyncio.client import ClientConnection, connect

from bench.signaling_relay import percentile
from bench.signaling_servers import rss_kib, start, stop, token_for


async def open_pair(
    kind: str, port: int, room: str, n: int
) -> tuple[ClientConnection, ClientConnection, str, str]:
    if kind == "dari":
        url = f"ws://127.0.0.1:{port}/ws/room"
        a = await connect(url, open_timeout=60)
        await a.send(json.dumps({"type": "join", "room": room, "token": token_for(n, room)}))
        a_id = json.loads(await a.recv())["peer_id"]
        b = await connect(url, open_timeout=60)
        await b.send(json.dumps({"type": "join", "room": room, "token": token_for(n + 1, room)}))
        b_id = json.loads(await b.recv())["peer_id"]
        await a.recv()  # peer-joined
        return a, b, a_id, b_id
    url = f"ws://127.0.0.1:{port}"
    a = await connect(url, open_timeout=60)
    b = await connect(url, open_timeout=60)
    for ws in (a, b):
        await ws.send(json.dumps({"room": room}))
        await ws.recv()
    return a, b, "a", "b"


async def measure(
    kind: str, pid: int, port: int, connections: int, rate: int, seconds: float
) -> dict[str, float]:
    before = rss_kib(pid)
    pairs = []
    semaphore = asyncio.Semaphore(50)

    async def one(i: int) -> None:
        async with semaphore:
            pairs.append(await open_pair(kind, port, f"scale-{i}", 2 * i))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(connections // 2)))
    connect_seconds = time.perf_counter() - started
    await asyncio.sleep(1)
    after = rss_kib(pid)
    latencies: list[float] = []

    async def reader(ws: ClientConnection) -> None:
        async for message in ws:
            sent = json.loads(message).get("sdp", "")
            if sent.startswith("t="):
                latencies.append((time.perf_counter() - float(sent[2:])) * 1000)

    readers = [asyncio.create_task(reader(b)) for _, b, _, _ in pairs]
    total = int(rate * seconds)
    begin = time.perf_counter()
    for n in range(total):
        a, _, _, b_id = random.choice(pairs)
        await a.send(json.dumps({"type": "offer", "to": b_id, "sdp": f"t={time.perf_counter()!r}"}))
        delay = begin + (n + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.sleep(1)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for pair in pairs for ws in pair[:2]), return_exceptions=True)
    return {
        "rss_per_conn_kib": (after - before) / connections,
        "rss_mib": after / 1024,
        "connect_s": connect_seconds,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "delivered": len(latencies) / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    results = {}
    for kind in ("bare", "dari"):
        process, port = start(kind)
        try:
            results[kind] = asyncio.run(
                measure(kind, process.pid, port, args.connections, args.rate, args.seconds)
            )
        finally:
            stop(process)
        r = results[kind]
        print(
            f"{kind:>4}: {args.connections} connections in {args.connections // 2} rooms, "
            f"connected in {r['connect_s']:.1f} s, RSS {r['rss_mib']:.0f} MiB, "
            f"{r['rss_per_conn_kib']:.1f} KiB/connection; {args.rate} msg/s: "
            f"p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms, delivered {r['delivered']:.1%}"
        )
    print(
        f"ratio dari/bare: memory per connection "
        f"{results['dari']['rss_per_conn_kib'] / results['bare']['rss_per_conn_kib']:.2f}x, "
        f"p50 {results['dari']['p50'] / results['bare']['p50']:.2f}x, "
        f"p99 {results['dari']['p99'] / results['bare']['p99']:.2f}x"
    )


if __name__ == "__main__":
    main()
