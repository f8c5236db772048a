"""Shared notes benchmark: a two-hour note as 20,000 keystroke updates.

    .venv/bin/python -m bench.notes [--updates 20000] [--database-url URL]

Measures, in one run:
- relay latency (p50/p99) of one keystroke from one editor's socket to the other's,
  through Dari's note socket (transform + write + commit + fan-out), against a plain
  WebSocket relay (receive, forward; no storage) served by uvicorn the same way;
- stored size of the finished note (snapshot and update log, before/after compaction);
- load time of the finished note (HTTP state, and a socket join up to the snapshot),
  against replaying the whole update log (what loading would cost without a snapshot).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.typing import Origin

from server import migrate
from server.accounts.models import Organisation, OrgKind, Region, Role, Specialty, User
from server.accounts.security import hash_password
from server.consults.models import ConsultRequest, ConsultStatus, Sex
from server.db import engine_for
from server.notes import service
from server.notes.models import NoteUpdate, SharedNote
from server.notes.ot import Client, TextOperation

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-42"

# -- the baseline: a plain WebSocket relay --------------------------------------------------
_rooms: dict[str, set[WebSocket]] = {}


async def _relay(websocket: WebSocket) -> None:
    room = _rooms.setdefault(websocket.path_params["room"], set())
    await websocket.accept()
    room.add(websocket)
    try:
        while True:
            message = await websocket.receive_text()
            for other in list(room):
                if other is not websocket:
                    await other.send_text(message)
    except WebSocketDisconnect:
        pass
    finally:
        room.discard(websocket)


relay_app = Starlette(routes=[WebSocketRoute("/relay/{room}", _relay)])


# -- set-up --------------------------------------------------------------------------------
def _seed(url: str) -> tuple[str, str, str]:
    with Session(engine_for(url), expire_on_commit=False) as session:
        region = Region(code="bench", name_ko="벤치", name_en="Bench")
        session.add(region)
        session.flush()
        clinic = Organisation(
            name_ko="의원", name_en="Clinic", kind=OrgKind.CLINIC, region_id=region.id or 0
        )
        hospital = Organisation(
            name_ko="병원", name_en="Hospital", kind=OrgKind.HOSPITAL, region_id=region.id or 0
        )
        specialty = Specialty(code="cardio", name_ko="심장", name_en="Cardiology")
        session.add_all([clinic, hospital, specialty])
        session.flush()
        password_hash = hash_password(PASSWORD)
        gp = User(
            email="gp@bench.example",
            name="GP",
            password_hash=password_hash,
            role=Role.GP,
            organisation_id=clinic.id or 0,
        )
        sp = User(
            email="sp@bench.example",
            name="SP",
            password_hash=password_hash,
            role=Role.SPECIALIST,
            organisation_id=hospital.id or 0,
            specialty_id=specialty.id,
        )
        session.add_all([gp, sp])
        session.flush()
        consult = ConsultRequest(
            organisation_id=clinic.id or 0,
            requester_id=gp.id or 0,
            specialty_id=specialty.id or 0,
            assigned_specialist_id=sp.id,
            status=ConsultStatus.IN_PROGRESS,
            patient_chart_number="B-1",
            patient_age=60,
            patient_sex=Sex.MALE,
            clinical_question="bench",
        )
        session.add(consult)
        session.commit()
        return consult.public_id, gp.email, sp.email


def _start(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with httpx2.Client() as http:
                http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx2.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{app} did not start")


def _cookie(base: str, email: str) -> str:
    with httpx2.Client(base_url=base) as http:
        csrf = http.get("/api/auth/csrf").json()["csrf_token"]
        response = http.post(
            "/api/auth/login",
            json={"email": email, "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        response.raise_for_status()
        return f"dari_session={http.cookies['dari_session']}"


def _keystrokes(n: int) -> list[tuple[str, int]]:
    """Typing with corrections: ~9 in 10 keystrokes insert, the rest are backspaces."""
    text = (
        "환자는 61세 남자로 흉통을 호소함. ECG: ST elevation in II, III, aVF. "
        "Plan: troponin, refer. "
    )
    keys: list[tuple[str, int]] = []
    for i in range(n):
        keys.append(("", 1) if i % 10 == 9 else (text[i % len(text)], 0))
    return keys


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- runs ----------------------------------------------------------------------------------
async def _run_notes(ws_url: str, base: str, cookies: tuple[str, str], n: int) -> list[float]:
    headers_a, headers_b = {"Cookie": cookies[0]}, {"Cookie": cookies[1]}
    async with (
        connect(ws_url, origin=Origin(base), additional_headers=headers_a, max_size=None) as a,
        connect(ws_url, origin=Origin(base), additional_headers=headers_b, max_size=None) as b,
    ):
        ca, cb = Client("bencha"), Client("benchb")
        for ws, cl in ((a, ca), (b, cb)):
            await ws.send(json.dumps({"type": "join", "client": cl.client_id, "rev": None}))
            while True:
                m = json.loads(await ws.recv())
                if m["type"] == "snapshot":
                    cl.doc, cl.revision = m["text"], m["rev"]
                if m["type"] == "ready":
                    break
        latencies: list[float] = []
        for ch, backspace in _keystrokes(n):
            doc = ca.doc
            if backspace and doc:
                op = TextOperation().retain(len(doc) - 1).delete(1)
            else:
                op = TextOperation().retain(len(doc)).insert(ch or "x")
            message = ca.local(op)
            assert message is not None
            started = time.perf_counter()
            await a.send(json.dumps(message))
            while True:  # the other editor sees it
                m = json.loads(await b.recv())
                if m["type"] == "op":
                    cb.receive(m)
                    break
            latencies.append(time.perf_counter() - started)
            while ca.state != "synchronized":  # and the author has its acknowledgement
                m = json.loads(await a.recv())
                if m["type"] == "op":
                    ca.receive(m)
        assert ca.doc == cb.doc
        return latencies


async def _run_relay(url: str, n: int) -> list[float]:
    async with connect(url) as a, connect(url) as b:
        await asyncio.sleep(0.2)
        latencies: list[float] = []
        for i, (ch, _backspace) in enumerate(_keystrokes(n)):
            message = json.dumps({"type": "op", "rev": i, "seq": i + 1, "op": [i, ch or "x"]})
            started = time.perf_counter()
            await a.send(message)
            await b.recv()
            latencies.append(time.perf_counter() - started)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        migrate.upgrade(url)
        public_id, gp_email, sp_email = _seed(url)
        env = {
            "DARI_DATABASE_URL": url,
            "DARI_SECRET_KEY": "bench-secret",
            "DARI_VAR_DIR": tmp,
            # The benchmark's specialist signs in with a password alone.
            "DARI_TOTP_REQUIRED_ROLES": "[]",
        }
        notes_port, relay_port = 18731, 18732
        server = _start("server.main:app", notes_port, env)
        relay = _start("bench.notes:relay_app", relay_port, env)
        try:
            base = f"http://127.0.0.1:{notes_port}"
            cookies = (_cookie(base, gp_email), _cookie(base, sp_email))
            ws_url = f"ws://127.0.0.1:{notes_port}/notes/ws/{public_id}"
            relay_lat = asyncio.run(
                _run_relay(f"ws://127.0.0.1:{relay_port}/relay/r", args.updates)
            )
            t0 = time.perf_counter()
            notes_lat = asyncio.run(_run_notes(ws_url, base, cookies, args.updates))
            notes_wall = time.perf_counter() - t0
            loads = []
            with httpx2.Client(base_url=base, headers={"Cookie": cookies[0]}) as http:
                for _ in range(30):
                    t = time.perf_counter()
                    state = http.get(f"/api/consults/{public_id}/notes").json()
                    loads.append(time.perf_counter() - t)
            replay = _replay_time(url)
            sizes = _sizes(url)
        finally:
            for process in (server, relay):
                process.terminate()
                process.wait(timeout=10)
    result: dict[str, Any] = {
        "updates": args.updates,
        "database": url.split(":", 1)[0],
        "notes_relay_p50_ms": round(_pct(notes_lat, 0.50), 2),
        "notes_relay_p99_ms": round(_pct(notes_lat, 0.99), 2),
        "plain_relay_p50_ms": round(_pct(relay_lat, 0.50), 2),
        "plain_relay_p99_ms": round(_pct(relay_lat, 0.99), 2),
        "p50_ratio": round(_pct(notes_lat, 0.5) / _pct(relay_lat, 0.5), 1),
        "p99_ratio": round(_pct(notes_lat, 0.99) / _pct(relay_lat, 0.99), 1),
        "notes_run_seconds": round(notes_wall, 1),
        "final_chars": len(state["text"]),
        "final_revision": state["rev"],
        **sizes,
        "load_state_http_median_ms": round(statistics.median(loads) * 1000, 2),
        "load_by_replaying_log_ms": round(replay * 1000, 1),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))


def _sizes(url: str) -> dict[str, int]:
    with Session(engine_for(url)) as session:
        note = session.exec(select(SharedNote)).one()
        rows, op_bytes = session.exec(
            select(func.count(), func.coalesce(func.sum(func.length(NoteUpdate.op)), 0)).where(
                NoteUpdate.note_id == note.id
            )
        ).one()
        snapshot = len(note.text.encode())
        # Per row besides the op: ids, revision, author, client id, seq, time (~60 bytes).
        before = snapshot + int(op_bytes) + int(rows) * 60
        removed = service.compact(session, note.consult_id, retention=timedelta(seconds=-1))
        session.commit()
        return {
            "snapshot_bytes": snapshot,
            "log_rows": int(rows),
            "stored_bytes_before_compaction": before,
            "log_rows_compacted": removed,
            "stored_bytes_after_compaction": snapshot,
        }


def _replay_time(url: str) -> float:
    """Loading without a snapshot: read every logged update and replay it (before compaction)."""
    started = time.perf_counter()
    with Session(engine_for(url)) as session:
        raws = session.exec(select(NoteUpdate.op).order_by(col(NoteUpdate.revision))).all()
    text = ""
    for raw in raws:
        text = TextOperation.from_json(json.loads(raw)).apply(text)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
