"""Notification latency: commit → on the subscriber's socket, through the real app.

    .venv/bin/python -m bench.notify_latency [--samples 300] [--postgres URL] [--redis URL]

Starts the real app (uvicorn, a real database: SQLite by default, or a fresh PostgreSQL
database with --postgres) twice, sharing Redis, and connects one specialist to
/ws/user on each (session cookie, same origin, as inbox.js does). Then, one at a time:

- same process: the GP posts a message on their consult through the API of app 1
  (`consult.message` to the specialist on app 1). Measured from the row's created_at
  (taken when the notification is written, before the rest of the transaction and the
  commit) to its arrival: an upper bound of commit → delivery.
- across processes: the same through app 1, heard on app 2 (woken over Redis).
- writer in another process: this process commits the row itself and publishes the
  wake on Redis as a server process does; from the end of its commit to the arrival.
- poll only (what every non-urgent kind had before): this process commits the row and
  wakes nobody; app 1 finds it at its next poll (the 1 s fallback).

Baseline, in the same run and database: the bare commit of one notification row (this
process: insert and commit).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import httpx2 as httpx
from sqlalchemy import Engine, func, text
from sqlmodel import Session, create_engine, select
from websockets.asyncio.client import ClientConnection, connect

from bench import apps
from bench.signaling_relay import percentile
from bench.signaling_servers import free_port
from bench.urgent_ring import SECRET, Person, seed
from server import migrate
from server.accounts.models import User
from server.consults.models import ConsultRequest, ConsultStatus
from server.notifications import service as notifications
from server.notifications.models import Notification
from signaling.broker import RedisBroker
from signaling.users import WAKE_CHANNEL

BENCH_DB = "dari_bench_notify"


def start_app(url: str, var_dir: str, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    env = {"DARI_REDIS_URL": redis_url, "DARI_URGENT_CHECK_SECONDS": "0"}
    return apps.start_app(url, var_dir, port, SECRET, env)


class Listener:
    """One specialist on /ws/user: the arrival time of every notification id."""

    def __init__(self, base: str, person: Person) -> None:
        self.base = base
        self.person = person
        self.arrived: dict[int, float] = {}
        self.created: dict[int, float] = {}
        self.event = asyncio.Event()
        self.ws: ClientConnection | None = None

    async def open(self, after_id: int) -> None:
        self.ws = await connect(
            self.base.replace("http", "ws") + "/ws/user",
            additional_headers={"Cookie": f"dari_session={self.person.token}", "Origin": self.base},
        )
        await self.ws.send(json.dumps({"v": 1, "type": "subscribe", "after_id": after_id}))

    async def ping(self) -> None:
        """The app's heartbeat, as inbox.js sends it (silence closes the socket: 4408)."""
        assert self.ws is not None
        while True:
            await asyncio.sleep(10)
            await self.ws.send(json.dumps({"v": 1, "type": "ping"}))

    async def run(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            now = time.time()
            frame = json.loads(message)
            if frame.get("type") == "notification":
                self.arrived.setdefault(frame["id"], now)
                self.created[frame["id"]] = datetime.fromisoformat(frame["created_at"]).timestamp()
                self.event.set()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            self.event.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("notification not delivered")
            try:
                await asyncio.wait_for(self.event.wait(), left)
            except TimeoutError:
                pass


def make_consult(engine: Engine, gp: Person, specialist: Person) -> str:
    """An accepted consult between the two: the GP's messages notify the specialist."""
    with Session(engine) as session:
        requester = session.get(User, gp.user_id)
        assigned = session.get(User, specialist.user_id)
        assert requester is not None and assigned is not None
        consult = ConsultRequest.model_validate(
            {
                "organisation_id": requester.organisation_id,
                "requester_id": requester.id,
                "specialty_id": assigned.specialty_id,
                "assigned_specialist_id": assigned.id,
                "assigned_organisation_id": assigned.organisation_id,
                "status": ConsultStatus.ACCEPTED,
                "patient_chart_number": "B-1",
                "patient_age": 60,
                "patient_sex": "female",
                "clinical_question": "Chest pain on exertion",
            }
        )
        session.add(consult)
        session.commit()
        return consult.public_id


def more_than(arrived: dict[int, float], count: int) -> bool:
    return len(arrived) > count


def contains(arrived: dict[int, float], row_id: int) -> bool:
    return row_id in arrived


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name}: p50 {percentile(values, 0.5):.1f} ms, p99 {percentile(values, 0.99):.1f} ms,"
        f" max {max(values):.1f} ms (n={len(values)})"
    )


def commit_row(engine: Engine, user_id: int) -> tuple[int, float, float]:
    """Insert and commit one notification: (id, commit start, commit end) in unix time."""
    with Session(engine) as session:
        t0 = time.time()
        row_id = notifications.notify(session, user_id, "consult.message", {"bench": 1}).id or 0
        session.commit()
        return row_id, t0, time.time()


async def measure(
    engine: Engine,
    bases: tuple[str, str],
    gp: Person,
    specialist: Person,
    consult: str,
    samples: int,
    poll_samples: int,
    redis_url: str,
) -> None:
    start = await asyncio.to_thread(
        lambda: int(Session(engine).exec(select(func.max(Notification.id))).one() or 0)
    )
    here, there = Listener(bases[0], specialist), Listener(bases[1], specialist)
    for listener in (here, there):
        await listener.open(start)
    tasks = [asyncio.create_task(listener.run()) for listener in (here, there)]
    tasks += [asyncio.create_task(listener.ping()) for listener in (here, there)]
    await asyncio.sleep(1.0)
    broker = RedisBroker(redis_url)
    await broker.connect()
    results: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=bases[0], timeout=30) as http:

        async def post() -> None:
            response = await http.post(
                f"/api/consults/{consult}/messages",
                json={"body": "Please see the attached ECG."},
                cookies={"dari_session": gp.token},
                headers={"X-CSRF-Token": gp.csrf},
            )
            response.raise_for_status()

        async def through_api(listener: Listener, name: str) -> None:
            values: list[float] = []
            for _ in range(samples):
                before = len(listener.arrived)
                await post()
                await listener.wait_for(functools.partial(more_than, listener.arrived, before))
                new_id = max(listener.arrived)
                values.append((listener.arrived[new_id] - listener.created[new_id]) * 1000)
            results[name] = values

        async def direct(
            listener: Listener, name: str, count: int, wake: Callable[[], Awaitable[None]] | None
        ) -> None:
            values: list[float] = []
            commits: list[float] = []
            for _ in range(count):
                row_id, t0, t1 = await asyncio.to_thread(commit_row, engine, specialist.user_id)
                commits.append((t1 - t0) * 1000)
                if wake is not None:
                    await wake()
                await listener.wait_for(functools.partial(contains, listener.arrived, row_id))
                values.append((listener.arrived[row_id] - t1) * 1000)
                # Without a wake, at a random point of the poller's period.
                await asyncio.sleep(0.01 if wake is not None else random.random())
            results[name] = values
            results.setdefault("baseline: bare commit of one notification row", []).extend(commits)

        await through_api(here, "same process (created_at → delivered)")
        await through_api(there, "across processes over Redis (created_at → delivered)")
        await direct(
            there,
            "writer in another process, wake over Redis (commit → delivered)",
            samples,
            lambda: broker.publish(WAKE_CHANNEL, "wake"),
        )
        await direct(here, "poll only, no wake (commit → delivered)", poll_samples, None)
    await broker.disconnect()
    for task in tasks:
        task.cancel()
    for listener in (here, there):
        if listener.ws is not None:
            await listener.ws.close()
    base = results["baseline: bare commit of one notification row"]
    for name, values in results.items():
        print(summary(name, values))
    for name, values in results.items():
        if not name.startswith("baseline"):
            ratio = percentile(values, 0.5) / percentile(base, 0.5)
            print(f"ratio (p50 / bare commit p50): {ratio:.1f}  [{name}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--poll-samples", type=int, default=40)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/7")
    parser.add_argument(
        "--postgres",
        default="",
        help="a PostgreSQL server URL (…/postgres); the benchmark creates and drops its own"
        " database there instead of using SQLite",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dari-bench-notify-") as tmp:
        url = f"sqlite:///{tmp}/dari.sqlite3"
        if args.postgres:
            url = apps.fresh_database(args.postgres, BENCH_DB)
        migrate.upgrade(url)
        world = seed(url, 10, gps=1)
        gp, specialist = world.gps[0], world.specialists[0]
        engine = create_engine(url)
        if url.startswith("sqlite"):
            with engine.begin() as connection:
                connection.execute(text("PRAGMA journal_mode=WAL"))
        public_id = make_consult(engine, gp, specialist)
        processes: list[subprocess.Popen[bytes]] = []
        bases: list[str] = []
        try:
            for _ in range(2):
                port = free_port()
                processes.append(start_app(url, tmp, port, args.redis))
                bases.append(f"http://127.0.0.1:{port}")
            for base, process in zip(bases, processes, strict=True):
                apps.wait_healthy(base, process)
            print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; two app processes")
            asyncio.run(
                measure(
                    engine,
                    (bases[0], bases[1]),
                    gp,
                    specialist,
                    public_id,
                    args.samples,
                    args.poll_samples,
                    args.redis,
                )
            )
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            engine.dispose()
            if args.postgres:
                apps.drop_database(args.postgres, BENCH_DB)


if __name__ == "__main__":
    main()
