"""Idle authenticated connections through the real app, and a stalled reader in a busy room.

    .venv/bin/python -m bench.signaling_idle [--connections 5000] [--rounds 600]

1. Idle: N clients open /ws/user on `dari serve` (server.main:app under uvicorn with
   the options `dari serve` passes, the real gatekeeper: each `subscribe` carries a
   session cookie resolved against the database, SQLite here), each sends a ping and
   waits for its pong, then stays idle. Measured: the server's resident memory growth
   per connection and the time to connect them all. Baseline in the same run: a bare
   `websockets` server (bench/signaling_servers.py `bare`) holding as many sockets,
   each answering one hello frame.
2. Stalled reader: three clients in one room exchange chat frames (each times its own
   frame coming back) while a fourth client in the room, with a small receive buffer,
   has stopped reading; p99 against the same exchange without the fourth client
   (`dari signaling`'s app, bench/signaling_servers.py `dari`). Reports whether and
   when the stalled client was closed with 4413.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlmodel import Session, create_engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import apps
from bench.signaling_relay import percentile
from bench.signaling_servers import free_port, rss_kib, start, stop, token_for
from server import migrate
from server.accounts.models import LoginSession, Organisation, OrgKind, Region, Role, User
from server.accounts.security import hash_password, new_token, token_hash
from server.clock import utcnow

SECRET = "bench-idle-secret-0123456789abcdef"
CONCURRENCY = 100


def raise_open_files(wanted: int) -> None:
    """Each connection is a file descriptor on both sides (the servers inherit this)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        print(f"warning: open-file limit {target} < {wanted}; connections may fail")


def seed(url: str, n: int) -> list[str]:
    """n users of one clinic, one live login session each; their session cookies."""
    migrate.upgrade(url)
    engine = create_engine(url)
    password = hash_password("bench-password")
    now = utcnow()
    cookies = []
    with Session(engine) as db:
        region = Region(code="idle", name_ko="벤치", name_en="Bench")
        db.add(region)
        db.flush()
        clinic = Organisation(
            name_ko="보건소", name_en="Clinic", kind=OrgKind.CLINIC, region_id=region.id or 0
        )
        db.add(clinic)
        db.flush()
        users = [
            User(
                email=f"idle{i}@bench.example",
                name=f"GP {i}",
                password_hash=password,
                role=Role.GP,
                organisation_id=clinic.id or 0,
            )
            for i in range(n)
        ]
        db.add_all(users)
        db.flush()
        for user in users:
            token = new_token()
            cookies.append(token)
            db.add(
                LoginSession(
                    token_hash=token_hash(token),
                    user_id=user.id or 0,
                    created_at=now,
                    last_seen_at=now,
                )
            )
        db.commit()
    engine.dispose()
    return cookies


BENCH_DB = "dari_bench_idle"


def start_dari(url: str, var_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    """`dari serve` on a free port: the real app, uvicorn options and all."""
    port = free_port()
    process = apps.start_app(url, var_dir, port, SECRET)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("dari serve did not start")


async def open_idle(
    kind: str, port: int, cookies: list[str], sockets: list[ClientConnection] | None = None
) -> list[ClientConnection]:
    """Open one connection per cookie (or as many bare ones), each answered once."""
    semaphore = asyncio.Semaphore(CONCURRENCY)
    sockets = [] if sockets is None else sockets
    base = f"http://127.0.0.1:{port}"

    async def one(i: int, cookie: str) -> None:
        async with semaphore:
            if kind == "dari":
                ws = await connect(
                    f"ws://127.0.0.1:{port}/ws/user",
                    additional_headers={"Cookie": f"dari_session={cookie}", "Origin": base},
                    open_timeout=120,
                )
                await ws.send(json.dumps({"type": "subscribe", "after_id": 0}))
                await ws.send(json.dumps({"type": "ping", "ts": i}))
                while json.loads(await ws.recv())["type"] != "pong":
                    pass
            else:
                ws = await connect(f"ws://127.0.0.1:{port}", open_timeout=120)
                await ws.send(json.dumps({"room": f"idle-{i}"}))
                await ws.recv()
            sockets.append(ws)

    await asyncio.gather(*(one(i, cookie) for i, cookie in enumerate(cookies)))
    return sockets


async def close_all(sockets: list[ClientConnection]) -> None:
    for ws in sockets:
        ws.transport.abort()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux): the machine is shared, so the CPU a
    connect costs the server is steadier than the wall time it takes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def keep_alive(sockets: list[ClientConnection], sent: list[int]) -> None:
    """Ping every socket every 5 s as the pages do (ws-client.js): Dari closes a socket
    silent for 2 × heartbeat (4408), and a long connect phase would otherwise lose the
    first connections before the memory is read. Counts the pings in sent[0]: a slower
    connect phase serves more of them, and their CPU counts in "server CPU"."""
    while True:
        await asyncio.sleep(5)
        for ws in list(sockets):
            with contextlib.suppress(ConnectionClosed):
                await ws.send('{"type":"ping"}')
                sent[0] += 1


async def idle_run(kind: str, pid: int, port: int, cookies: list[str]) -> dict[str, float]:
    warm = await open_idle(kind, port, cookies[:20])  # lazy imports, first queries
    await asyncio.sleep(1)
    before = rss_kib(pid)
    cpu = cpu_seconds(pid)
    sockets: list[ClientConnection] = []
    pings = [0]
    keeper = asyncio.create_task(keep_alive(sockets, pings))
    started = time.perf_counter()
    await open_idle(kind, port, cookies[20:], sockets)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu
    pings_during = pings[0]
    await asyncio.sleep(2)
    after = rss_kib(pid)
    alive = sum(1 for ws in sockets if ws.close_code is None)
    keeper.cancel()
    n = len(sockets)
    if alive < n:
        print(f"warning: {n - alive} of {n} {kind} connections were closed before the reading")
    await close_all(sockets + warm)
    return {
        "n": n,
        "seconds": seconds,
        "cpu_ms": 1000 * cpu / n,
        "rss_mib": after / 1024,
        "kib_per": (after - before) / n,
        "pings_per": pings_during / n,
    }


# --- stalled reader ----------------------------------------------------------------------

TEXT = "x" * 1500


async def _join(port: int, n: int, room: str, **options: object) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}/ws/room", open_timeout=30, **options)  # type: ignore[arg-type]
    await ws.send(json.dumps({"type": "join", "room": room, "token": token_for(n, room)}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


async def exchange(clients: list[ClientConnection], rounds: int) -> list[float]:
    async def one(ws: ClientConnection, n: int) -> list[float]:
        times = []
        for i in range(rounds):
            mark = f"{n}-{i}-"
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "chat", "text": mark + TEXT}))
            async with asyncio.timeout(30):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "chat" and frame["text"].startswith(mark):
                        break
            times.append(time.perf_counter() - started)
        return times

    results = await asyncio.gather(*(one(ws, n) for n, ws in enumerate(clients)))
    return [t for times in results for t in times]


async def stalled_run(port: int, rounds: int) -> dict[str, float]:
    room = "stall"
    clients = [await _join(port, n, room) for n in range(3)]
    await exchange(clients, 20)
    without = await exchange(clients, rounds)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", port))
    raw.setblocking(False)
    stalled = await _join(port, 9, room, sock=raw, max_queue=1)
    started = time.perf_counter()
    with_stall = await exchange(clients, rounds)
    elapsed = time.perf_counter() - started
    code = None
    try:
        async with asyncio.timeout(10):
            while True:
                await stalled.recv()
    except (ConnectionClosed, TimeoutError):
        code = stalled.close_code
    for ws in [*clients, stalled]:
        ws.transport.abort()
    return {
        "p50_without": percentile(without, 0.5) * 1000,
        "p99_without": percentile(without, 0.99) * 1000,
        "p50_with": percentile(with_stall, 0.5) * 1000,
        "p99_with": percentile(with_stall, 0.99) * 1000,
        "sent_to_stalled_mib": 3 * rounds * (len(TEXT) + 100) / 2**20,
        "seconds": elapsed,
        "close_code": float(code or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=1500, help="chat rounds per client")
    parser.add_argument("--skip-stalled", action="store_true")
    parser.add_argument(
        "--postgresql",
        metavar="SERVER_URL",
        help="run the app on a fresh PostgreSQL database on this server "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres); default SQLite",
    )
    args = parser.parse_args()
    n = args.connections + 20
    raise_open_files(2 * n + 1000)

    with tempfile.TemporaryDirectory() as var_dir:
        url = (
            apps.fresh_database(args.postgresql, BENCH_DB)
            if args.postgresql
            else f"sqlite:///{var_dir}/idle.db"
        )
        print(f"seeding {n} users with sessions ...", flush=True)
        cookies = seed(url, n)
        results = {}
        for kind in ("bare", "dari"):
            process, port = start("bare") if kind == "bare" else start_dari(url, var_dir)
            try:
                results[kind] = asyncio.run(idle_run(kind, process.pid, port, cookies))
            finally:
                stop(process)
            r = results[kind]
            print(
                f"{kind:5} {r['n']:.0f} idle connections: connect {r['seconds']:.1f} s "
                f"({r['n'] / r['seconds']:.0f}/s, server CPU {r['cpu_ms']:.2f} ms each, "
                f"{r['pings_per']:.1f} keep-alive pings each meanwhile), "
                f"RSS {r['rss_mib']:.0f} MiB, "
                f"{r['kib_per']:.1f} KiB/connection",
                flush=True,
            )
        bare, dari = results["bare"], results["dari"]
        print(
            f"ratio dari/bare: memory {dari['kib_per'] / bare['kib_per']:.2f}x, "
            f"connect rate {bare['seconds'] / dari['seconds']:.2f}x of bare, "
            f"server CPU per connect {dari['cpu_ms'] / bare['cpu_ms']:.2f}x"
        )

    if args.skip_stalled:
        return
    process, port = start("dari")
    try:
        s = asyncio.run(stalled_run(port, args.rounds))
    finally:
        stop(process)
    print(
        f"stalled reader: without p50 {s['p50_without']:.2f} ms p99 {s['p99_without']:.2f} ms; "
        f"with p50 {s['p50_with']:.2f} ms p99 {s['p99_with']:.2f} ms "
        f"(ratio p99 {s['p99_with'] / s['p99_without']:.2f}x); "
        f"{s['sent_to_stalled_mib']:.1f} MiB sent towards the stalled client; "
        f"its close code {s['close_code']:.0f}"
    )


if __name__ == "__main__":
    main()
