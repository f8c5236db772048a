"""Soak: two signaling processes over Redis for half an hour; drops, latency, memory growth.

    make soak                                        # 30 minutes, 100 rooms (200 clients)
    .venv/bin/python -m bench.soak --minutes 3       # a short check
    .venv/bin/python -m bench.soak --database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB
    .venv/bin/python -m bench.soak --freeze 20       # SIGSTOP process A for 20 s mid-run
    .venv/bin/python -m bench.soak --probe 2000      # instead: per-connection figures, one process

Starts two real `dari signaling` processes (the server's gatekeeper, uvicorn) on one
migrated, seeded database (SQLite in a temporary directory, or an empty database given
with --database-url) and one Redis (--redis-url; its own database number, 11 by
default). Every room is a consult with its GP and its specialist; the GP joins through
one process and the specialist through the other, both with signed join tokens (the
real secret, as `POST /api/consults/{id}/join-token` signs them), so every frame
crosses Redis. Each room then talks like a call does, at --rate frames per second: an
offer, its answer, trickled candidates both ways, end-of-candidates, in-call chat, and
now and then an ICE restart request; every client pings as a browser does. Some users
also hold a user-channel socket (/ws/user) and receive notifications that this script
writes to the outbox (the `notification` table) through the server's own service.

It counts every frame sent against every frame delivered (a chat reaches both peers),
one-way latency (client clock: the sender and receiver are this process), and samples
each server process's resident memory and CPU every minute after the warm-up. Goals,
checked at the end (the exit status is 1 if one is missed): no frame and no
notification lost, no socket closed by the server, each process's RSS at the end within
10 % of its RSS after the warm-up. Not run by `make test`, `make bench` or CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlmodel import Session, create_engine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.signaling_relay import percentile
from bench.signaling_servers import free_port, rss_kib
from server import migrate
from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.accounts.security import hash_password
from server.calls.service import user_key
from server.consults.models import ConsultRequest, ConsultStatus, Sex
from server.db import engine_for
from server.notifications import service as notifications
from signaling import tokens

ROOT = Path(__file__).resolve().parent.parent
SECRET = "soak-secret-key-0123456789abcdef-0123456789"
MEMORY_GOAL = 0.10  # RSS growth from the end of the warm-up to the end
DRAIN_SECONDS = 10.0  # after the last frame, how long a late delivery may take
PING_SECONDS = 10.0  # browsers ping within heartbeat_s (15)
TOKEN_SECONDS = 3600  # only checked at join
CLK_TCK = os.sysconf("SC_CLK_TCK")

# One negotiation-like exchange of a room, repeated: (kind, sender is the room's first
# speaker this cycle?). Candidates trickle both ways; chat goes to everyone in the room.
CYCLE: list[tuple[str, bool]] = [
    ("offer", True),
    ("answer", False),
    ("candidate", True),
    ("candidate", False),
    ("candidate", True),
    ("candidate", False),
    ("candidate", True),
    ("candidate", False),
    ("end-of-candidates", True),
    ("end-of-candidates", False),
    ("chat", True),
    ("chat", False),
    ("chat", True),
    ("ice-restart", False),
]

# A realistic description (~2.7 kB, audio + video, as a browser writes); the first
# number of the origin line carries the frame's sequence number.
SDP = (
    "v=0\r\no=- {seq} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS soak\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:soak\r\na=ice-pwd:soaksoaksoaksoaksoaksoak\r\n"
    "a=ice-options:trickle\r\na=fingerprint:sha-256 "
    + ":".join(["AB"] * 32)
    + "\r\na=setup:actpass\r\na=mid:0\r\n"
    + "".join(f"a=extmap:{n} urn:ietf:params:rtp-hdrext:soak-{n}\r\n" for n in range(1, 6))
    + "a=sendrecv\r\na=msid:soak audio\r\na=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    + "".join(f"a=rtpmap:{pt} codec{pt}/8000\r\n" for pt in (63, 9, 0, 8, 13, 110, 126))
    + "a=ssrc:1111 cname:soak\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102 103 104 105\r\nc=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:soak\r\na=ice-pwd:soaksoaksoaksoaksoaksoak\r\n"
    "a=ice-options:trickle\r\na=setup:actpass\r\na=mid:1\r\na=sendrecv\r\n"
    "a=msid:soak video\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
    + "".join(
        f"a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} transport-cc\r\n"
        f"a=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n"
        for pt in range(96, 106)
    )
    + "a=ssrc-group:FID 2222 3333\r\na=ssrc:2222 cname:soak\r\na=ssrc:3333 cname:soak\r\n"
)
SEQ_IN_SDP = re.compile(r"o=- (\d+) ")
SEQ_IN_TEXT = re.compile(r"#(\d+)")


# --- the database --------------------------------------------------------------------------


@dataclass
class Room:
    public_id: str
    gp: tuple[int, str]  # (user id, name)
    specialist: tuple[int, str]


def seed(url: str, rooms: int) -> list[Room]:
    """A region, a hub, a clinic, one specialty; per room a GP, a specialist, a consult
    in progress between them."""
    engine = create_engine(url)
    password = hash_password("soak-password")
    made: list[Room] = []
    with Session(engine, expire_on_commit=False) as db:
        region = Region(code="soak", name_ko="소크", name_en="Soak")
        db.add(region)
        db.flush()
        hub = Organisation(
            name_ko="거점병원",
            name_en="Hub",
            kind=OrgKind.HOSPITAL,
            region_id=region.id or 0,
            is_hub=True,
        )
        clinic = Organisation(
            name_ko="보건소", name_en="Clinic", kind=OrgKind.HEALTH_CENTRE, region_id=region.id or 0
        )
        specialty = Specialty(code="soak", name_ko="소크과", name_en="Soak")
        db.add_all([hub, clinic, specialty])
        db.flush()

        def person(role: Role, n: int) -> User:
            user = User(
                email=f"{role.value}{n}@soak.example",
                name=f"{role.value} {n}",
                password_hash=password,
                role=role,
                organisation_id=(hub.id if role == Role.SPECIALIST else clinic.id) or 0,
                specialty_id=specialty.id if role == Role.SPECIALIST else None,
            )
            db.add(user)
            return user

        for n in range(rooms):
            gp, specialist = person(Role.GP, n), person(Role.SPECIALIST, n)
            db.flush()
            consult = ConsultRequest(
                organisation_id=clinic.id or 0,
                requester_id=gp.id or 0,
                specialty_id=specialty.id or 0,
                assigned_specialist_id=specialist.id,
                assigned_organisation_id=hub.id,
                status=ConsultStatus.IN_PROGRESS,
                patient_chart_number=f"S-{n}",
                patient_age=60,
                patient_sex=Sex.FEMALE,
                clinical_question="Soak",
            )
            db.add(consult)
            db.flush()
            made.append(
                Room(
                    consult.public_id, (gp.id or 0, gp.name), (specialist.id or 0, specialist.name)
                )
            )
        db.commit()
    engine.dispose()
    return made


def join_token(user: tuple[int, str], room: str) -> str:
    """The claims `server.calls.service.issue_join_token` signs (without a login session)."""
    user_id, name = user
    claims = {"r": room, "k": user_key(user_id), "u": user_id, "n": name, "t": "user"}
    return tokens.sign_join(SECRET, claims, TOKEN_SECONDS)


# --- the two server processes --------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    cpu_ticks: int = 0
    cpu_at: float = 0.0

    def rss_mib(self) -> float:
        return rss_kib(self.process.pid) / 1024

    def cpu_percent(self) -> float:
        """CPU use since the previous call, in % of one core."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        now = time.monotonic()
        share = (ticks - self.cpu_ticks) / CLK_TCK / max(now - self.cpu_at, 1e-9) * 100
        self.cpu_ticks, self.cpu_at = ticks, now
        return share


def start_server(database_url: str, redis_url: str, var_dir: str) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "DARI_DATABASE_URL": database_url,
        "DARI_SECRET_KEY": SECRET,
        "DARI_VAR_DIR": var_dir,
        "DARI_REDIS_URL": redis_url,
        "DARI_LOG_LEVEL": "warning",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "signaling", "--port", str(port)], cwd=ROOT, env=env
    )
    return Server(process, port)


async def wait_listening(server: Server) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError("a signaling process exited while starting")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("a signaling process did not start")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


# --- the ledger: what was sent, what arrived -----------------------------------------------


@dataclass
class Ledger:
    seq: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)
    expected: dict[int, int] = field(default_factory=dict)
    got: Counter[int] = field(default_factory=Counter)
    # Frames without a payload to tag (end-of-candidates, ice-restart): counted per receiver.
    untagged_sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    untagged_got: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # this minute, ms
    all_latencies: list[float] = field(default_factory=list)
    notes_sent_at: dict[int, float] = field(default_factory=dict)  # seq → commit started
    notes_got: Counter[int] = field(default_factory=Counter)
    note_latencies: list[float] = field(default_factory=list)
    note_window: list[float] = field(default_factory=list)  # this minute, ms
    closes: list[str] = field(default_factory=list)  # sockets the server closed
    errors: Counter[str] = field(default_factory=Counter)  # error frames, stray frames
    pongs: int = 0
    anomalies: int = 0  # this minute
    began: float = field(default_factory=time.perf_counter)

    def anomaly(self, what: str, where: str) -> None:
        """An unexpected frame (error, peer-left...): counted, the first few printed."""
        self.errors[what] += 1
        self.anomalies += 1
        if self.errors[what] <= 3:
            print(f"  [{self.clock()}] {what} at {where}", flush=True)

    def clock(self) -> str:
        """Time since the clients connected, and UTC, for the live lines."""
        elapsed = time.perf_counter() - self.began
        return f"+{elapsed:.0f} s, {datetime.now(UTC):%H:%M:%S} UTC"

    def next_seq(self, deliveries: int) -> int:
        self.seq += 1
        self.expected[self.seq] = deliveries
        self.sent_at[self.seq] = time.perf_counter()
        return self.seq

    def arrived(self, seq: int, timed: bool) -> None:
        self.got[seq] += 1
        if timed and seq in self.sent_at:
            ms = (time.perf_counter() - self.sent_at[seq]) * 1000
            self.latencies.append(ms)
            self.all_latencies.append(ms)

    def frames_sent(self) -> int:
        return sum(self.expected.values()) + sum(self.untagged_sent.values())

    def frames_delivered(self) -> int:
        tagged = sum(min(n, self.expected.get(seq, 0)) for seq, n in self.got.items())
        untagged = sum(min(n, self.untagged_sent[key]) for key, n in self.untagged_got.items())
        return tagged + untagged

    def duplicates(self) -> int:
        tagged = sum(max(0, n - self.expected.get(seq, 0)) for seq, n in self.got.items())
        untagged = sum(max(0, n - self.untagged_sent[key]) for key, n in self.untagged_got.items())
        return tagged + untagged

    def overdue(self, older_than: float) -> int:
        """Tagged deliveries still missing for frames sent more than `older_than` s ago."""
        cutoff = time.perf_counter() - older_than
        return sum(
            self.expected[seq] - min(self.got[seq], self.expected[seq])
            for seq, at in self.sent_at.items()
            if at < cutoff
        )


# --- clients -------------------------------------------------------------------------------


@dataclass
class Client:
    name: str  # "r<room>-gp" etc.
    ws: ClientConnection
    peer_id: str = ""
    closing: bool = False


async def reader(client: Client, ledger: Ledger) -> None:
    """Every frame this client receives, accounted for."""
    try:
        async for message in client.ws:
            frame: dict[str, Any] = json.loads(message)
            kind = frame.get("type")
            match kind:
                case "offer" | "answer":
                    found = SEQ_IN_SDP.search(frame["sdp"])
                    ledger.arrived(int(found.group(1)) if found else -1, timed=True)
                case "candidate":
                    seq = frame["candidate"]["candidate"].split()[0].split(":")[1]
                    ledger.arrived(int(seq), timed=True)
                case "chat":
                    found = SEQ_IN_TEXT.search(frame["text"])
                    # The sender's own copy comes from its process: timed only at the peer.
                    mine = frame.get("from") == client.peer_id
                    ledger.arrived(int(found.group(1)) if found else -1, timed=not mine)
                case "end-of-candidates":
                    ledger.untagged_got[(client.name, kind)] += 1
                case "ice-restart" if frame.get("reason") == "requested":
                    ledger.untagged_got[(client.name, kind)] += 1
                case "notification":
                    seq = int(frame["payload"].get("soak", -1))
                    ledger.notes_got[seq] += 1
                    if seq in ledger.notes_sent_at and ledger.notes_got[seq] == 1:
                        ms = (time.perf_counter() - ledger.notes_sent_at[seq]) * 1000
                        ledger.note_latencies.append(ms)
                        ledger.note_window.append(ms)
                case "pong":
                    ledger.pongs += 1
                case _:
                    ledger.anomaly(
                        f"{kind}: {frame.get('code') or frame.get('reason') or ''}", client.name
                    )
    except ConnectionClosed as closed:
        if not client.closing:
            ledger.closes.append(f"{client.name}: {closed.rcvd.code if closed.rcvd else '-'}")
            ledger.anomaly(f"closed {closed.rcvd.code if closed.rcvd else '-'}", client.name)
        return
    if not client.closing:
        ledger.closes.append(f"{client.name}: closed")


async def open_room(
    room: Room, index: int, servers: list[Server], ledger: Ledger
) -> tuple[Client, Client]:
    """The GP on one process, the specialist on the other (alternating by room)."""
    first = servers[index % 2]
    second = servers[(index + 1) % 2]
    gp = await _join(first, f"r{index}-gp", room.public_id, room.gp)
    specialist = await _join(second, f"r{index}-sp", room.public_id, room.specialist)
    # The GP hears of the specialist through Redis before the room starts talking.
    frame = json.loads(await asyncio.wait_for(gp.ws.recv(), 30))
    if frame.get("type") != "peer-joined":
        raise RuntimeError(f"room {index}: expected peer-joined, got {frame}")
    return gp, specialist


async def _join(server: Server, name: str, room: str, user: tuple[int, str]) -> Client:
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/room", open_timeout=60)
    await ws.send(
        json.dumps({"v": 1, "type": "join", "room": room, "token": join_token(user, room)})
    )
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 30))
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"{name}: expected welcome, got {welcome}")
    return Client(name, ws, welcome["peer_id"])


async def subscribe(server: Server, name: str, user: tuple[int, str], room: str) -> Client:
    """A user-channel socket, as the inbox holds one (join token instead of the cookie)."""
    ws = await connect(f"ws://127.0.0.1:{server.port}/ws/user", open_timeout=60)
    await ws.send(
        json.dumps({"v": 1, "type": "subscribe", "after_id": 0, "token": join_token(user, room)})
    )
    return Client(name, ws)


async def talk(
    pair: tuple[Client, Client], rate: float, ledger: Ledger, stop: asyncio.Event
) -> None:
    """One room's conversation: the cycle again and again, Poisson-spaced at `rate`/s."""
    rng = random.Random(pair[0].name)
    await asyncio.sleep(rng.uniform(0, 2 / rate))
    while not stop.is_set():
        a, b = pair if rng.random() < 0.5 else pair[::-1]
        for kind, a_speaks in CYCLE:
            if stop.is_set():
                return
            sender, receiver = (a, b) if a_speaks else (b, a)
            frame: dict[str, Any] = {"type": kind}
            if kind == "chat":
                seq = ledger.next_seq(2)
                frame["text"] = f"#{seq} 혈압은 130/85입니다. BP 130/85, any questions?"
            elif kind in ("offer", "answer"):
                seq = ledger.next_seq(1)
                frame |= {"to": receiver.peer_id, "sdp": SDP.format(seq=seq)}
            elif kind == "candidate":
                seq = ledger.next_seq(1)
                port = 50000 + seq % 10000
                frame |= {
                    "to": receiver.peer_id,
                    "candidate": {
                        "candidate": f"candidate:{seq} 1 udp 2122260223 192.0.2.7 {port} typ host"
                        " generation 0 ufrag soak network-id 1",
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                        "usernameFragment": "soak",
                    },
                }
            else:
                ledger.untagged_sent[(receiver.name, kind)] += 1
                frame["to"] = receiver.peer_id
            try:
                await sender.ws.send(json.dumps(frame))
            except ConnectionClosed:
                return  # the reader records the close
            await asyncio.sleep(rng.expovariate(rate))


async def pinger(clients: list[Client], stop: asyncio.Event, every: float = PING_SECONDS) -> None:
    """Heartbeats, spread over the interval as many browsers' would be."""
    while not stop.is_set():
        began = time.perf_counter()
        for n, client in enumerate(clients):
            with contextlib.suppress(ConnectionClosed):
                await client.ws.send(json.dumps({"type": "ping", "ts": time.time()}))
            delay = began + (n + 1) * every / len(clients) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)


async def watchdog(ledger: Ledger, stop: asyncio.Event) -> None:
    """Say when this client stalls or the wall clock steps (both would explain a gap;
    presence expiry is wall-clock time)."""
    offset = time.time() - time.monotonic()
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(1)
        lag = time.monotonic() - before - 1
        if lag > 1:
            print(f"  [{ledger.clock()}] the soak client stalled {lag:.1f} s", flush=True)
        now = time.time() - time.monotonic()
        if abs(now - offset) > 0.5:
            print(f"  [{ledger.clock()}] wall clock stepped {now - offset:+.1f} s", flush=True)
        offset = now


async def freeze(server: Server, at: float, seconds: float, ledger: Ledger) -> None:
    """Stop process A (SIGSTOP) for `seconds`, as a long stall would (--freeze)."""
    await asyncio.sleep(at)
    print(f"  [{ledger.clock()}] process A frozen for {seconds:.0f} s", flush=True)
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    print(f"  [{ledger.clock()}] process A running again", flush=True)


async def notifier(
    engine: Engine,
    users: list[int],
    rate: float,
    ledger: Ledger,
    stop: asyncio.Event,
) -> None:
    """Notifications written to the outbox, as the server's services write them."""
    rng = random.Random(7)
    seq = 0

    def write(user_id: int, n: int) -> None:
        with Session(engine) as db:
            notifications.notify(db, user_id, "consult.message", {"consult": "soak", "soak": n})
            ledger.notes_sent_at[n] = time.perf_counter()
            db.commit()

    while not stop.is_set():
        seq += 1
        await asyncio.to_thread(write, rng.choice(users), seq)
        await asyncio.sleep(rng.expovariate(rate))


# --- the run -------------------------------------------------------------------------------


@dataclass
class Sample:
    minute: int
    sent: int
    delivered: int
    overdue: int
    p50: float
    p99: float
    notes: str
    rss: list[float]
    cpu: list[float]
    presence: int = 0
    anomalies: int = 0


def row(s: Sample) -> str:
    rss = " | ".join(f"{value:.1f}" for value in s.rss)
    cpu = " / ".join(f"{value:.0f}" for value in s.cpu)
    return (
        f"| {s.minute} | {s.sent:,} | {s.delivered:,} | {s.overdue} | "
        + (f"{s.p50:.2f} | {s.p99:.1f}" if s.minute else "– | –")
        + f" | {s.notes} | {rss} | "
        + (cpu if s.minute else "–")
        + f" | {s.presence} | {s.anomalies} |"
    )


HEADER = (
    "| minute | frames sent | delivered | missing > 5 s | p50 ms | p99 ms | notifications"
    " (sent / got, p50 ms) | RSS A MiB | RSS B MiB | CPU % A / B | presence entries"
    " | unexpected frames |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


async def soak(args: argparse.Namespace, database_url: str, var_dir: str) -> int:
    rooms = seed(database_url, args.rooms)
    print(f"seeded {len(rooms)} consults; starting two signaling processes", flush=True)
    servers = [start_server(database_url, args.redis_url, var_dir) for _ in range(2)]
    engine = engine_for(database_url)
    ledger = Ledger()
    clients: list[Client] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    redis = Redis.from_url(args.redis_url)
    try:
        await asyncio.gather(*(wait_listening(server) for server in servers))
        started = time.perf_counter()
        semaphore = asyncio.Semaphore(20)

        async def one(index: int, room: Room) -> tuple[Client, Client]:
            async with semaphore:
                return await open_room(room, index, servers, ledger)

        pairs = await asyncio.gather(*(one(i, room) for i, room in enumerate(rooms)))
        clients = [client for pair in pairs for client in pair]
        subscribers = [
            await subscribe(servers[i % 2], f"u{i}", rooms[i].gp, rooms[i].public_id)
            for i in range(min(args.subscribers, len(rooms)))
        ]
        clients += subscribers
        print(
            f"{len(pairs) * 2} clients in {len(pairs)} rooms and {len(subscribers)} user-channel"
            f" subscribers connected in {time.perf_counter() - started:.1f} s"
            f" (GP on one process, specialist on the other)",
            flush=True,
        )
        tasks = [asyncio.create_task(reader(client, ledger)) for client in clients]
        tasks += [asyncio.create_task(talk(pair, args.rate, ledger, stop)) for pair in pairs]
        tasks.append(asyncio.create_task(pinger(clients, stop)))
        tasks.append(asyncio.create_task(watchdog(ledger, stop)))
        if args.freeze:
            at = min(args.warmup, args.minutes * 30) + (args.minutes * 60 - args.warmup) / 2
            tasks.append(asyncio.create_task(freeze(servers[0], at, args.freeze, ledger)))
        ledger.began = time.perf_counter()
        if subscribers:
            users = [rooms[i].gp[0] for i in range(len(subscribers))]
            tasks.append(
                asyncio.create_task(notifier(engine, users, args.notify_rate, ledger, stop))
            )
        total = args.minutes * 60
        warmup = min(args.warmup, total / 2)
        print(f"warm-up {warmup:.0f} s, then {total - warmup:.0f} s measured", flush=True)
        await asyncio.sleep(warmup)
        for server in servers:
            server.cpu_percent()
        ledger.latencies.clear()
        samples: list[Sample] = [await _sample(0, ledger, servers, redis, rooms)]
        print(HEADER + "\n" + row(samples[0]), flush=True)
        begin = time.perf_counter()
        minute = 0
        while (elapsed := time.perf_counter() - begin) < total - warmup:
            await asyncio.sleep(min(60 * (minute + 1), total - warmup) - elapsed)
            minute += 1
            samples.append(await _sample(minute, ledger, servers, redis, rooms))
            print(row(samples[-1]), flush=True)
            if any(server.process.poll() is not None for server in servers):
                print("a signaling process died", flush=True)
                break
        stop.set()
        await asyncio.sleep(DRAIN_SECONDS)
        return report(args, ledger, servers, samples)
    finally:
        stop.set()
        for client in clients:
            client.closing = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_all(clients)
        for server in servers:
            stop_server(server)
        engine.dispose()
        with contextlib.suppress(RedisError):
            await redis.aclose()
            await forget_rooms(args.redis_url, {room.public_id for room in rooms})


async def _sample(
    minute: int, ledger: Ledger, servers: list[Server], redis: Redis, rooms: list[Room]
) -> Sample:
    latencies, ledger.latencies = ledger.latencies, []
    notes, ledger.note_window = ledger.note_window, []
    anomalies, ledger.anomalies = ledger.anomalies, 0
    # Entries in the rooms' presence hashes (the relay reads them): 2 per room expected.
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for room in rooms:
                pipe.hlen(f"dari:sig:peers:{room.public_id}")
            presence = sum(await pipe.execute())
    except RedisError as error:  # the run goes on; the row says it could not look
        print(f"  [{ledger.clock()}] presence not sampled: {error!r}", flush=True)
        presence = -1
    return Sample(
        presence=presence,
        anomalies=anomalies,
        minute=minute,
        sent=ledger.frames_sent(),
        delivered=ledger.frames_delivered(),
        overdue=ledger.overdue(5.0),
        p50=percentile(latencies, 0.5) if latencies else 0.0,
        p99=percentile(latencies, 0.99) if latencies else 0.0,
        notes=(
            f"{len(ledger.notes_sent_at)} / {sum(min(n, 1) for n in ledger.notes_got.values())}"
            + (f", {percentile(notes, 0.5):.0f}" if notes else "")
        ),
        rss=[server.rss_mib() for server in servers],
        cpu=[server.cpu_percent() for server in servers] if minute else [0.0, 0.0],
    )


def report(
    args: argparse.Namespace, ledger: Ledger, servers: list[Server], samples: list[Sample]
) -> int:
    sent, delivered = ledger.frames_sent(), ledger.frames_delivered()
    notes_sent = len(ledger.notes_sent_at)
    notes_got = sum(1 for seq in ledger.notes_sent_at if ledger.notes_got[seq])
    start, end = samples[0].rss, samples[-1].rss
    growth = [(e - s) / s for s, e in zip(start, end, strict=True)]
    lat = ledger.all_latencies
    print(
        f"\nframes: {sent:,} sent, {delivered:,} delivered, {sent - delivered} lost,"
        f" {ledger.duplicates()} duplicated (goal: 0 lost)\n"
        f"one-way latency over the whole run: p50 {percentile(lat, 0.5):.2f} ms,"
        f" p99 {percentile(lat, 0.99):.1f} ms, max {max(lat):.0f} ms ({len(lat):,} timed)\n"
        f"notifications: {notes_sent} written, {notes_got} delivered, "
        f"{notes_sent - notes_got} lost; commit → frame p50"
        f" {percentile(ledger.note_latencies, 0.5) if ledger.note_latencies else 0:.0f} ms,"
        f" p99 {percentile(ledger.note_latencies, 0.99) if ledger.note_latencies else 0:.0f} ms\n"
        + "".join(
            f"process {'AB'[i]}: RSS {s:.1f} MiB after warm-up, {e:.1f} MiB at the end"
            f" ({g:+.1%}; goal < {MEMORY_GOAL:.0%})\n"
            for i, (s, e, g) in enumerate(zip(start, end, growth, strict=True))
        )
        + f"sockets closed by the server: {len(ledger.closes)}"
        + (f" ({', '.join(ledger.closes[:10])})" if ledger.closes else "")
        + f"\nunexpected frames: {dict(ledger.errors) or 'none'}; pongs {ledger.pongs:,}",
        flush=True,
    )
    missed = []
    if sent != delivered:
        missed.append(f"{sent - delivered} frames lost")
    if notes_sent != notes_got:
        missed.append(f"{notes_sent - notes_got} notifications lost")
    if any(g >= MEMORY_GOAL for g in growth):
        missed.append("memory grew by 10 % or more")
    if ledger.closes:
        missed.append("sockets closed by the server")
    _save(args, ledger, samples, growth, missed)
    print("goals met" if not missed else "GOALS MISSED: " + "; ".join(missed), flush=True)
    return 1 if missed else 0


def _save(
    args: argparse.Namespace,
    ledger: Ledger,
    samples: list[Sample],
    growth: list[float],
    missed: list[str],
) -> None:
    """The figures as JSON under var/bench/, for docs/benchmarks.md."""
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"soak-{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "args": {k: v for k, v in vars(args).items() if k != "database_url"},
                "sent": ledger.frames_sent(),
                "delivered": ledger.frames_delivered(),
                "p50_ms": percentile(ledger.all_latencies, 0.5),
                "p99_ms": percentile(ledger.all_latencies, 0.99),
                "notifications": [len(ledger.notes_sent_at), len(ledger.notes_got)],
                "growth": growth,
                "closes": ledger.closes,
                "samples": [vars(s) for s in samples],
                "missed": missed,
            },
            indent=1,
        )
    )
    print(f"results: {path}")


async def close_all(clients: list[Client]) -> None:
    """Close the sockets 25 at a time: a process that sees more than 100 leave at once
    runs out of Redis connections (redis-py's pool of 100; reported in issue 15)."""
    for client in clients:
        client.closing = True
    for n in range(0, len(clients), 25):
        await asyncio.gather(*(c.ws.close() for c in clients[n : n + 25]), return_exceptions=True)


async def forget_rooms(redis_url: str, rooms: set[str]) -> None:
    """Remove this run's presence keys (they would expire anyway)."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        doomed = [
            key async for key in redis.scan_iter("dari:sig:*") if key.rsplit(":", 1)[-1] in rooms
        ]
        if doomed:
            await redis.delete(*doomed)
    finally:
        await redis.aclose()


# --- the per-connection figures behind docs/deployment.md "Capacity" ---------------------


async def probe(args: argparse.Namespace, database_url: str, var_dir: str) -> int:
    """One real `dari signaling` process: memory per idle authenticated connection,
    connect rate, and CPU per heartbeat (--probe N connections, --probe-kind)."""
    count = args.probe - args.probe % 2
    rooms = seed(database_url, count // 2)
    server = start_server(database_url, args.redis_url, var_dir)
    clients: list[Client] = []
    ledger = Ledger()
    try:
        await wait_listening(server)
        await asyncio.sleep(2)
        before = server.rss_mib()
        semaphore = asyncio.Semaphore(50)

        async def room_pair(index: int, room: Room) -> list[Client]:
            async with semaphore:
                return list(await open_room(room, index, [server, server], ledger))

        async def user_pair(index: int, room: Room) -> list[Client]:
            async with semaphore:
                return [
                    await subscribe(server, f"u{index}g", room.gp, room.public_id),
                    await subscribe(server, f"u{index}s", room.specialist, room.public_id),
                ]

        opener = room_pair if args.probe_kind == "room" else user_pair
        started = time.perf_counter()
        groups = await asyncio.gather(*(opener(i, room) for i, room in enumerate(rooms)))
        connect_s = time.perf_counter() - started
        clients = [client for group in groups for client in group]
        tasks = [asyncio.create_task(reader(client, ledger)) for client in clients]
        await asyncio.sleep(5)
        after = server.rss_mib()
        # Heartbeats only, every client once per --probe-ping seconds, for 30 s.
        stop = asyncio.Event()
        server.cpu_percent()
        ponged = ledger.pongs
        tasks.append(asyncio.create_task(pinger(clients, stop, args.probe_ping)))
        await asyncio.sleep(30)
        cpu = server.cpu_percent()
        pongs = ledger.pongs - ponged
        stop.set()
        per_conn = (after - before) * 1024 / len(clients)
        print(
            f"{len(clients)} idle authenticated {args.probe_kind} connections on one process:"
            f" connected in {connect_s:.1f} s ({len(clients) / connect_s:.0f}/s),"
            f" RSS {before:.1f} → {after:.1f} MiB ({per_conn:.1f} KiB/connection)\n"
            f"heartbeats: {pongs / 30:.0f}/s answered for 30 s, CPU {cpu:.1f} % of one core"
            f" ({cpu / 100 * 30 / max(pongs, 1) * 1e6:.0f} µs per ping);"
            f" closed by the server: {len(ledger.closes)}",
            flush=True,
        )
        for client in clients:
            client.closing = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return 0
    finally:
        await close_all(clients)
        stop_server(server)
        await forget_rooms(args.redis_url, {room.public_id for room in rooms})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rooms", type=int, default=100, help="two clients each")
    parser.add_argument("--rate", type=float, default=3.0, help="frames per second per room")
    parser.add_argument("--subscribers", type=int, default=40, help="user-channel sockets")
    parser.add_argument("--notify-rate", type=float, default=1.0, help="notifications per second")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the first sample")
    parser.add_argument("--database-url", default="", help="an empty database (default: SQLite)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument(
        "--freeze", type=float, default=0, help="SIGSTOP process A this long mid-run (seconds)"
    )
    parser.add_argument(
        "--probe", type=int, default=0, metavar="N", help="instead: N idle connections, one process"
    )
    parser.add_argument("--probe-kind", choices=("room", "user"), default="room")
    parser.add_argument("--probe-ping", type=float, default=1.0, help="seconds between pings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dari-soak-") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/soak.sqlite3"
        migrate.upgrade(url)
        return asyncio.run(_until_signal((probe if args.probe else soak)(args, url, tmp)))


async def _until_signal(work: Coroutine[Any, Any, int]) -> int:
    """SIGTERM or SIGINT (ignored by background jobs otherwise) end the run cleanly:
    the servers are stopped and the Redis keys removed in the `finally` blocks."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        print("stopped by a signal", flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
