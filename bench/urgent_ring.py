"""Urgent rings under load: request → first ring on screen, accept → every ring stopped.

    .venv/bin/python -m bench.urgent_ring [--specialists 200] [--requests 50] [--runs 1]

Starts the real app (uvicorn, SQLite, in-memory broker, the default 1 s outbox poll) and
connects `specialists` clients to /ws/user, as the inbox does (session cookie, same
origin). They belong to 10 specialties; 4 of each are on call in the GPs' region, so each
urgent request rings 4 of them. `requests` GPs then send urgent consults at once through
the API (the same service as the new-request page). A client that hears `urgent.ring`
reads /urgent/panel, as inbox.js does, and the ring counts as on screen when the panel
shows it. Then one rung specialist per consult accepts (all at once, the API's accept:
the same service as the inbox's button); a client that hears `urgent.taken` reads its
panel again, and the ring counts as stopped when the panel no longer shows it.

Baseline, in the same run and the same server: one urgent request with nothing else in
flight (same 200 connected). The ratios say what 50 requests in flight cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from datetime import time as clock

import httpx2 as httpx
from sqlmodel import Session, create_engine
from websockets.asyncio.client import ClientConnection, connect

from bench import apps
from bench.signaling_relay import percentile
from bench.signaling_servers import free_port
from server import migrate
from server.accounts.models import (
    LoginSession,
    Organisation,
    OrgKind,
    Region,
    Role,
    Specialty,
    User,
)
from server.accounts.security import csrf_token, hash_password, new_token, token_hash
from server.clock import utcnow
from server.scheduling.models import RosterRule, RuleKind

SECRET = "bench-urgent-secret-key-0123456789abcdef"
SPECIALTIES = 10
ON_CALL_PER_SPECIALTY = 4


@dataclass
class Person:
    user_id: int
    specialty: int
    token: str
    csrf: str


@dataclass
class World:
    gps: list[Person]
    specialists: list[Person]
    specialty_ids: list[int]


def seed(url: str, specialists: int, gps: int) -> World:
    """Region, hub, clinic, specialties, people with sessions, on-call rosters."""
    engine = create_engine(url)
    password = hash_password("bench-password")
    now = utcnow()
    with Session(engine, expire_on_commit=False) as db:
        region = Region(code="bench", name_ko="벤치", name_en="Bench")
        db.add(region)
        db.flush()
        hub = Organisation(
            name_ko="거점",
            name_en="Hub",
            kind=OrgKind.HOSPITAL,
            region_id=region.id or 0,
            is_hub=True,
        )
        clinic = Organisation(
            name_ko="보건소", name_en="Clinic", kind=OrgKind.CLINIC, region_id=region.id or 0
        )
        db.add(hub)
        db.add(clinic)
        specialties = [
            Specialty(code=f"s{i}", name_ko=f"과{i}", name_en=f"S{i}") for i in range(SPECIALTIES)
        ]
        for s in specialties:
            db.add(s)
        db.flush()

        def person(role: Role, n: int, specialty: Specialty | None) -> Person:
            user = User(
                email=f"{role.value}{n}@bench.example",
                name=f"{role.value} {n}",
                password_hash=password,
                role=role,
                organisation_id=(hub.id if role == Role.SPECIALIST else clinic.id) or 0,
                specialty_id=specialty.id if specialty else None,
            )
            db.add(user)
            db.flush()
            token = new_token()
            db.add(
                LoginSession(
                    token_hash=token_hash(token),
                    user_id=user.id or 0,
                    created_at=now,
                    last_seen_at=now,
                )
            )
            if role == Role.SPECIALIST and n % (specialists // SPECIALTIES) < ON_CALL_PER_SPECIALTY:
                for weekday in range(7):
                    db.add(
                        RosterRule(
                            specialist_id=user.id or 0,
                            weekday=weekday,
                            start_time=clock(0, 0),
                            end_time=clock(0, 0),
                            slot_minutes=60,
                            kind=RuleKind.ONCALL,
                            valid_from=date(2020, 1, 1),
                        )
                    )
            return Person(
                user.id or 0,
                specialty.id or 0 if specialty else 0,
                token,
                csrf_token(SECRET, token_hash(token)),
            )

        per = specialists // SPECIALTIES
        world = World(
            gps=[person(Role.GP, n, None) for n in range(gps)],
            specialists=[
                person(Role.SPECIALIST, n, specialties[n // per]) for n in range(specialists)
            ],
            specialty_ids=[s.id or 0 for s in specialties],
        )
        db.commit()
    engine.dispose()
    return world


BENCH_DB = "dari_bench_urgent"


def start_app(url: str, var_dir: str, port: int) -> subprocess.Popen[bytes]:
    # No escalation during the measurement.
    return apps.start_app(url, var_dir, port, SECRET, {"DARI_URGENT_CHECK_SECONDS": "0"})


@dataclass
class Observed:
    ring_on_screen: dict[str, float] = field(default_factory=dict)  # consult → first time
    rung: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    urgent_id: dict[str, int] = field(default_factory=dict)
    stopped: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


class Listener:
    """One connected specialist: hears the user channel and reads the panel like inbox.js."""

    def __init__(self, person: Person, base: str, http: httpx.AsyncClient, seen: Observed) -> None:
        self.person = person
        self.base = base
        self.http = http
        self.seen = seen
        self.ws: ClientConnection | None = None

    async def open(self) -> None:
        self.ws = await connect(
            self.base.replace("http", "ws") + "/ws/user",
            additional_headers={
                "Cookie": f"dari_session={self.person.token}",
                "Origin": self.base,
            },
            open_timeout=60,
        )
        await self.ws.send(json.dumps({"v": 1, "type": "subscribe", "after_id": 0}))

    async def panel(self) -> str:
        response = await self.http.get("/urgent/panel", cookies={"dari_session": self.person.token})
        return response.text

    async def run(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            frame = json.loads(message)
            if frame.get("type") != "notification":
                continue
            payload = frame.get("payload") or {}
            consult = str(payload.get("consult_id") or "")
            if frame["kind"] == "urgent.ring":
                self.seen.urgent_id[consult] = int(payload["urgent_id"])
                self.seen.rung[consult].add(self.person.user_id)
                if f'data-ring="{consult}"' in await self.panel():
                    self.seen.ring_on_screen.setdefault(consult, time.perf_counter())
            elif frame["kind"] == "urgent.taken":
                if f'data-ring="{consult}"' not in await self.panel():
                    self.seen.stopped[consult].append(time.perf_counter())


async def send_urgent(http: httpx.AsyncClient, gp: Person, specialty_id: int, n: int) -> str:
    response = await http.post(
        "/api/consults",
        json={
            "specialty_id": specialty_id,
            "patient_chart_number": f"B-{n}",
            "patient_age": 60,
            "patient_sex": "male",
            "clinical_question": "Crushing chest pain for 40 minutes",
            "urgency": "urgent",
            "mode": "video",
        },
        cookies={"dari_session": gp.token},
        headers={"X-CSRF-Token": gp.csrf},
    )
    response.raise_for_status()
    body: dict[str, str] = response.json()
    return body["id"]


async def wait_for(check: Callable[[], bool], within: float = 60) -> None:
    deadline = time.perf_counter() + within
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("not reached")
        await asyncio.sleep(0.005)


async def round_of(
    http: httpx.AsyncClient,
    world: World,
    seen: Observed,
    count: int,
    offset: int,
    stored: list[float],
) -> tuple[list[float], list[float]]:
    """`count` urgent requests at once, then one accept each at once: latencies in ms."""
    gps = world.gps
    started: dict[str, float] = {}
    answered: dict[str, float] = {}

    async def request(i: int) -> str:
        t0 = time.perf_counter()
        public_id = await send_urgent(
            http, gps[i % len(gps)], world.specialty_ids[i % SPECIALTIES], offset + i
        )
        started[public_id] = t0
        answered[public_id] = time.perf_counter()
        return public_id

    consults = await asyncio.gather(*(request(i) for i in range(count)))
    await wait_for(lambda: all(c in seen.ring_on_screen for c in consults))
    to_ring = [(seen.ring_on_screen[c] - started[c]) * 1000 for c in consults]
    stored.extend((answered[c] - started[c]) * 1000 for c in consults)
    # Every rung client has heard its ring before anyone accepts.
    await wait_for(lambda: all(len(seen.rung[c]) == ON_CALL_PER_SPECIALTY for c in consults))
    by_id = {p.user_id: p for p in world.specialists}
    accepted: dict[str, float] = {}

    async def accept(consult: str) -> None:
        taker = by_id[min(seen.rung[consult])]
        t0 = time.perf_counter()
        response = await http.post(
            f"/api/urgent/{seen.urgent_id[consult]}/accept",
            cookies={"dari_session": taker.token},
            headers={"X-CSRF-Token": taker.csrf},
        )
        response.raise_for_status()
        accepted[consult] = t0

    await asyncio.gather(*(accept(c) for c in consults))
    others = ON_CALL_PER_SPECIALTY - 1
    await wait_for(lambda: all(len(seen.stopped[c]) >= others for c in consults))
    to_stop = [(max(seen.stopped[c][:others]) - accepted[c]) * 1000 for c in consults]
    return to_ring, to_stop


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name}: p50 {percentile(values, 0.5):.0f} ms, p95 {percentile(values, 0.95):.0f} ms,"
        f" max {max(values):.0f} ms (n={len(values)})"
    )


async def measure(base: str, world: World, requests: int, runs: int) -> None:
    seen = Observed()
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        listeners = [Listener(p, base, http, seen) for p in world.specialists]
        semaphore = asyncio.Semaphore(50)

        async def open_one(listener: Listener) -> None:
            async with semaphore:
                await listener.open()

        await asyncio.gather(*(open_one(listener) for listener in listeners))
        tasks = [asyncio.create_task(listener.run()) for listener in listeners]
        await asyncio.sleep(1.5)  # every subscription is in place
        print(f"{len(listeners)} specialists connected to /ws/user")
        base_ring: list[float] = []
        base_stop: list[float] = []
        load_ring: list[float] = []
        load_stop: list[float] = []
        base_saved: list[float] = []
        load_saved: list[float] = []
        offset = 0
        for _ in range(runs):
            for _ in range(5):  # the baseline: one request in flight at a time
                ring, stop = await round_of(http, world, seen, 1, offset, base_saved)
                offset += 1
                base_ring += ring
                base_stop += stop
            ring, stop = await round_of(http, world, seen, requests, offset, load_saved)
            offset += requests
            load_ring += ring
            load_stop += stop
        for task in tasks:
            task.cancel()
        for listener in listeners:
            if listener.ws is not None:
                await listener.ws.close()
    print(summary("baseline, request → stored (the POST's answer)", base_saved))
    print(summary(f"{requests} in flight, request → stored (the POST's answer)", load_saved))
    print(summary("baseline, request → first ring on screen", base_ring))
    print(summary(f"{requests} in flight, request → first ring on screen", load_ring))
    print(summary("baseline, accept → every other ring stopped", base_stop))
    print(summary(f"{requests} in flight, accept → every other ring stopped", load_stop))
    print(
        f"ratio (p50, {requests} in flight / baseline): ring"
        f" {percentile(load_ring, 0.5) / percentile(base_ring, 0.5):.2f},"
        f" stop {percentile(load_stop, 0.5) / percentile(base_stop, 0.5):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specialists", type=int, default=200)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--postgres",
        default="",
        help="a PostgreSQL server URL (…/postgres); the benchmark creates and drops its own"
        " database there instead of using SQLite",
    )
    args = parser.parse_args()
    if args.specialists < SPECIALTIES * ON_CALL_PER_SPECIALTY:
        parser.error(f"--specialists must be at least {SPECIALTIES * ON_CALL_PER_SPECIALTY}")
    with tempfile.TemporaryDirectory(prefix="dari-bench-urgent-") as tmp:
        url = f"sqlite:///{tmp}/dari.sqlite3"
        if args.postgres:
            url = apps.fresh_database(args.postgres, BENCH_DB)
        migrate.upgrade(url)
        world = seed(url, args.specialists, gps=max(1, min(args.requests, 50)))
        port = free_port()
        process = start_app(url, tmp, port)
        base = f"http://127.0.0.1:{port}"
        try:
            apps.wait_healthy(base, process)
            asyncio.run(measure(base, world, args.requests, args.runs))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if args.postgres:
                apps.drop_database(args.postgres, BENCH_DB)


if __name__ == "__main__":
    main()
