"""Failover: how soon a process's death is known, and how soon its peers are back.

    .venv/bin/python -m bench.failover [--runs 5] [--redis redis://127.0.0.1:6379/5]

Two signaling processes share Redis (a prefix of this run's own) behind Debian's
HAProxy (round robin, no sticky sessions, `option redispatch`). Each run puts
peer X on process A and peer Y on process B of one room, then ends A:

* (a) "away": from the end of A to Y hearing `peer-away` for X (X does not come
  back), after `kill -9` (noticed through A's lapsed heartbeat) against a clean
  stop (SIGTERM: A hands its peers over itself) in the same run;
* (b) "resumed": from the end of A to X's resumed `welcome` through the balancer
  (same peer id, at the survivor), after `kill -9` against a plain reconnect of X
  through the balancer without any process ending.

A is started again after each run. Also a helper for the tests:

    python -m bench.failover node PORT REDIS_URL PREFIX [RESUME_S REFRESH_S TTL_S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.signaling_servers import ROOT, SECRET, TokenGate, free_port, token_for
from signaling.gate import SignalingConfig

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


# --- the processes ----------------------------------------------------------------------


def serve_node(port: int, url: str, prefix: str, resume: float, refresh: float, ttl: float) -> None:
    """One signaling process (join tokens, no database) on a shared Redis."""
    import uvicorn

    from signaling.app import SignalingService, standalone_app

    config = SignalingConfig(
        rate_per_second=10_000,
        burst=10_000,
        heartbeat_seconds=60,
        resume_seconds=resume,
        presence_refresh_seconds=refresh,
        presence_ttl_seconds=ttl,
        broker_prefix=prefix,
        link_secret=SECRET,  # direct links between the nodes, as a deployment has
    )
    service = SignalingService(TokenGate(), config, url)
    uvicorn.run(standalone_app(service), host="127.0.0.1", port=port, log_level="warning")


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not start")


def start_node(
    url: str,
    prefix: str,
    port: int | None = None,
    *,
    resume: float = 30.0,
    refresh: float = 5.0,
    ttl: float = 15.0,
) -> tuple[subprocess.Popen[bytes], int]:
    """A signaling process on `port` (or a free one), once it accepts connections."""
    port = port or free_port()
    argv = [sys.executable, "-m", "bench.failover", "node", str(port), url, prefix]
    process = subprocess.Popen(
        [*argv, str(resume), str(refresh), str(ttl)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    _wait_port(port, process, "signaling node")
    return process, port


def haproxy_config(
    port: int, backends: list[int], *, health: str = "/healthz", balance: str = "roundrobin"
) -> str:
    """Round robin over the backends, WebSocket upgrades passed through, no stickiness.

    A connection refused by a dead backend is retried on another one at once
    (`option redispatch 1`); health checks take it out within about a second."""
    servers = "\n".join(
        f"    server s{n} 127.0.0.1:{backend} check inter 500ms fall 2 rise 1"
        for n, backend in enumerate(backends)
    )
    check = f"    option httpchk GET {health}\n" if health else ""
    return f"""global
    maxconn 4096

defaults
    mode http
    timeout connect 500ms
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    retries 3
    option redispatch 1

frontend dari
    bind 127.0.0.1:{port}
    default_backend signaling

backend signaling
    balance {balance}
{check}{servers}
"""


def start_haproxy(
    backends: list[int], *, health: str = "/healthz", balance: str = "roundrobin"
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Debian's HAProxy in the foreground on a free port of 127.0.0.1 (`balance first`:
    every connection to the first backend that is up, which a test can predict)."""
    if not Path(HAPROXY).exists():
        raise RuntimeError("haproxy missing: apt-get install -y haproxy (see .ci/services.sh)")
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="dari-haproxy-"))
    config = folder / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends, health=health, balance=balance))
    process = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, process, "haproxy")
    return process, port, folder


def end(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- the clients ------------------------------------------------------------------------


@dataclass
class Peer:
    ws: ClientConnection
    peer_id: str
    resume_token: str


async def recv_type(ws: ClientConnection, kind: str, wait: float = 30) -> dict[str, Any]:
    async with asyncio.timeout(wait):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


async def join(port: int, room: str, user: int, resume: str | None = None) -> Peer:
    ws = await connect(f"ws://127.0.0.1:{port}/ws/room", open_timeout=10)
    frame = {"type": "join", "room": room, "token": token_for(user, room), "resume_token": resume}
    await ws.send(json.dumps(frame))
    welcome = await recv_type(ws, "welcome")
    return Peer(ws, welcome["peer_id"], welcome["resume_token"])


async def resume_through(lb: int, room: str, user: int, token: str, deadline: float) -> Peer:
    """Reconnect as the page does (back-off 0.25–0.5 s) until a resumed welcome."""
    while True:
        try:
            peer = await join(lb, room, user, token)
            await peer.ws.send(json.dumps({"type": "ping"}))
            return peer
        except (OSError, TimeoutError, Exception):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


# --- one run ----------------------------------------------------------------------------


async def away_after(node: subprocess.Popen[bytes], port_a: int, port_b: int, sig: int) -> float:
    """Seconds from ending A (with `sig`) to B's peer hearing `peer-away` for A's peer."""
    room = "r-" + secrets.token_hex(4)
    x = await join(port_a, room, 1)
    y = await join(port_b, room, 2)
    await recv_type(x.ws, "peer-joined")
    started = time.monotonic()
    node.send_signal(sig)
    while True:
        frame = await recv_type(y.ws, "peer-away")
        if frame["peer_id"] == x.peer_id:
            took = time.monotonic() - started
            break
    await y.ws.close()
    x.ws.transport.abort()
    return took


async def plain_resume(lb: int, port_b: int) -> float:
    """Seconds from X's socket dropping (no process ends) to X's resumed welcome through
    the balancer: the baseline of (b)."""
    room = "r-" + secrets.token_hex(4)
    y = await join(port_b, room, 2)
    x = await join(lb, room, 1)
    await recv_type(y.ws, "peer-joined")
    started = time.monotonic()
    x.ws.transport.abort()
    back = await resume_through(lb, room, 1, x.resume_token, time.monotonic() + 30)
    took = time.monotonic() - started
    assert back.peer_id == x.peer_id, "not resumed"
    await back.ws.close()
    await y.ws.close()
    return took


def summary(name: str, values: list[float], base: list[float], base_name: str) -> str:
    median, base_median = statistics.median(values), statistics.median(base)
    ratio = median / base_median if base_median else float("inf")
    return (
        f"{name}: median {median * 1000:.0f} ms (max {max(values) * 1000:.0f} ms); "
        f"{base_name}: median {base_median * 1000:.0f} ms; ratio {ratio:.1f}x"
    )


async def bench(runs: int, url: str) -> None:
    prefix = f"dari:bench-failover:{secrets.token_hex(4)}:"
    node_b, port_b = start_node(url, prefix)
    node_a, port_a = start_node(url, prefix)
    lb, lb_port, folder = start_haproxy([port_a, port_b], health="")
    killed_away: list[float] = []
    stopped_away: list[float] = []
    killed_resume: list[float] = []
    plain: list[float] = []
    try:
        for run in range(runs):
            killed_away.append(await away_after(node_a, port_a, port_b, signal.SIGKILL))
            node_a.wait()
            node_a, _ = start_node(url, prefix, port_a)
            stopped_away.append(await away_after(node_a, port_a, port_b, signal.SIGTERM))
            node_a.wait()
            node_a, _ = start_node(url, prefix, port_a)
            plain.append(await plain_resume(lb_port, port_b))
            # X must be on A for the kill to matter: with round robin, every other
            # connection lands there; a run where it did not is measured again.
            while True:
                try:
                    killed_resume.append(
                        await killed_resume_once(node_a, lb_port, port_b, url, prefix)
                    )
                    break
                except _OnB:
                    continue
            node_a, _ = start_node(url, prefix, port_a)
            print(
                f"run {run + 1}: away after kill {killed_away[-1] * 1000:.0f} ms, "
                f"after stop {stopped_away[-1] * 1000:.0f} ms; resumed after kill "
                f"{killed_resume[-1] * 1000:.0f} ms, plain {plain[-1] * 1000:.0f} ms",
                flush=True,
            )
    finally:
        end(lb)
        end(node_a)
        end(node_b)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"failover, {runs} runs, two processes on Redis behind HAProxy {lb_version()}")
    print(summary("(a) away after kill -9", killed_away, stopped_away, "after a clean stop"))
    print(summary("(b) resumed after kill -9", killed_resume, plain, "plain reconnect"))


class _OnB(Exception):
    """The balancer put X on B this time."""


async def killed_resume_once(
    node_a: subprocess.Popen[bytes], lb: int, port_b: int, url: str, prefix: str
) -> float:
    """Seconds from kill -9 of A to X's resumed welcome through the balancer (raises _OnB
    when the balancer put X on B: then the run is tried again)."""
    room = "r-" + secrets.token_hex(4)
    y = await join(port_b, room, 2)
    x = await join(lb, room, 1)
    await recv_type(y.ws, "peer-joined")
    holder = await _holder(url, prefix, room, x.peer_id)
    if holder != "a":
        await x.ws.close()
        await y.ws.close()
        raise _OnB
    started = time.monotonic()
    node_a.send_signal(signal.SIGKILL)
    await asyncio.wait_for(x.ws.wait_closed(), 10)
    back = await resume_through(lb, room, 1, x.resume_token, time.monotonic() + 30)
    took = time.monotonic() - started
    assert back.peer_id == x.peer_id, "not resumed"
    node_a.wait()
    await back.ws.close()
    await y.ws.close()
    return took


async def _holder(url: str, prefix: str, room: str, peer_id: str) -> str:
    """ "a" or "b": which node holds the peer, from its presence record and the node that
    holds Y (B is the node of the room's other record)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(url, decode_responses=True)
    try:
        records = await redis.hgetall(f"{prefix}peers:{room}")
    finally:
        await redis.aclose()
    nodes = {pid: json.loads(raw)["node"] for pid, raw in records.items()}
    other = next(node for pid, node in nodes.items() if pid != peer_id)
    return "b" if nodes[peer_id] == other else "a"


def lb_version() -> str:
    try:
        out = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True, check=False)
        return out.stdout.split("\n")[0].split(" ")[2]
    except (OSError, IndexError):
        return "?"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "node":
        port, url, prefix = int(sys.argv[2]), sys.argv[3], sys.argv[4]
        resume, refresh, ttl = (float(x) for x in (sys.argv[5:8] or ["30", "5", "15"]))
        serve_node(port, url, prefix, resume, refresh, ttl)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()
    asyncio.run(bench(args.runs, args.redis))


if __name__ == "__main__":
    main()
