"""Servers for the signaling benchmarks, each run in its own process.

    python -m bench.signaling_servers dari PORT   # Dari's signaling app under uvicorn
    python -m bench.signaling_servers bare PORT   # a bare `websockets` relay (the baseline)
    python -m bench.signaling_servers bare PORT --link listen:LINK   # ... split in two
    python -m bench.signaling_servers bare PORT --link dial:LINK     # processes

    ... [--loop uvloop|asyncio] [--broker redis://127.0.0.1:6379/0 --prefix bench:x:]
    ... bare PORT --no-deflate                     # as Dari's sockets: no compression

Both run on the event loop given (uvloop by default, as `dari serve` picks it when it
is installed), so a comparison is between servers, not between loops. Dari can use
the Redis broker under a key prefix of the run's own (two processes sharing it are
the cross-process case).

Dari runs with a gatekeeper that checks signed join tokens exactly as the server
does (HMAC, expiry, room), but without the database: the benchmarks measure
the relay, not SQLite. The per-connection rate limit stays on, set high.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from signaling import tokens
from signaling.gate import Admission, Identity, QualityReport, SignalingConfig

SECRET = "bench-secret"
ROOT = Path(__file__).resolve().parent.parent


class TokenGate:
    """Join tokens only (as for non-browser clients); no call records."""

    async def authenticate(self, cookie: str | None, token: str | None) -> Identity | None:
        claims = tokens.verify_join(SECRET, token or "")
        if claims is None:
            return None
        return Identity(key=claims["k"], name=claims["n"], user_id=claims["u"], room=claims["r"])

    async def admission(self, identity: Identity, room: str) -> Admission:
        return Admission.ALLOW if identity.room == room else Admission.DENY

    async def ice_servers(self, identity: Identity) -> list[dict[str, Any]]:
        return []

    async def call_joined(self, room: str, peer_id: str, identity: Identity) -> None:
        return None

    async def call_left(self, room: str, peer_id: str, room_empty: bool) -> None:
        return None

    async def call_quality(self, room: str, peer_id: str, report: QualityReport) -> None:
        return None

    async def notifications_since(self, user_id: int, after_id: int) -> list[dict[str, Any]]:
        return []

    async def notifications_after(
        self, after_id: int, user_ids: list[int]
    ) -> list[tuple[int, dict[str, Any]]]:
        return []

    async def latest_notification_id(self) -> int:
        return 0

    async def notifications_window(
        self, floor: int, user_ids: list[int], settled_before: float
    ) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        return 0, []


def token_for(user_id: int, room: str) -> str:
    claims = {"r": room, "k": f"user:{user_id}", "u": user_id, "n": f"U{user_id}", "t": "user"}
    return tokens.sign_join(SECRET, claims, 600)


LOOPS = ("uvloop", "asyncio")


def serve_dari(
    port: int, loop: str = "uvloop", broker: str = "memory://", prefix: str = ""
) -> None:
    import uvicorn

    from signaling.app import SignalingService, standalone_app
    from signaling.serving import uvicorn_options

    config = SignalingConfig(
        rate_per_second=100_000, burst=100_000, heartbeat_seconds=60, link_secret=SECRET
    )
    if prefix:  # the run's own keys and channels on a Redis that others may share
        config.broker_prefix = prefix
    service = SignalingService(TokenGate(), config, broker)
    uvicorn.run(
        standalone_app(service),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop=loop,
        **uvicorn_options(),
    )


def serve_bare(port: int, loop: str = "uvloop", deflate: bool = True, link: str = "") -> None:
    """The least a relay can do: pair sockets by room, forward every frame to the other.

    With `deflate` False it offers no per-message compression, as Dari's sockets
    (signaling/serving.py). With `link` ("listen:PORT" or "dial:PORT") it is one of two
    processes joined by a plain TCP connection, each forwarding its clients' frames to
    the other (a length and "room\nframe"): the least a relay split across two
    processes can do, the floor of Dari's cross-process figure on this machine."""
    from websockets.asyncio.server import ServerConnection, serve

    rooms: dict[str, list[ServerConnection]] = {}
    peers: list[asyncio.StreamWriter] = []

    async def handler(ws: ServerConnection) -> None:
        room = json.loads(await ws.recv())["room"]
        members = rooms.setdefault(room, [])
        members.append(ws)
        await ws.send(json.dumps({"type": "welcome"}))
        try:
            async for message in ws:
                for other in members:
                    if other is not ws:
                        await other.send(message)
                for writer in peers:
                    data = f"{room}\n{message!s}".encode()
                    writer.write(len(data).to_bytes(4, "big") + data)
        finally:
            members.remove(ws)
            if not members:
                rooms.pop(room, None)

    async def from_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        while True:
            size = int.from_bytes(await reader.readexactly(4), "big")
            room, _, message = (await reader.readexactly(size)).decode().partition("\n")
            for member in rooms.get(room, []):
                await member.send(message)

    async def main() -> None:
        role, _, link_port = link.partition(":")
        pump = None
        if role == "listen":
            await asyncio.start_server(from_peer, "127.0.0.1", int(link_port))
        elif role == "dial":
            reader, writer = await asyncio.open_connection("127.0.0.1", int(link_port))
            pump = asyncio.create_task(from_peer(reader, writer))
        compression = "deflate" if deflate else None
        async with serve(handler, "127.0.0.1", port, max_size=2**16, compression=compression):
            await asyncio.Future()
        del pump

    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(kind: str, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server process and wait until its port accepts connections.

    `options` are this module's command-line options (--loop, --broker, --prefix)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.signaling_servers", kind, str(port), *options],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{kind} server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of a process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["dari", "bare"])
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=LOOPS, default="uvloop")
    parser.add_argument("--broker", default="memory://", help="Dari only")
    parser.add_argument("--prefix", default="", help="Dari with Redis: key/channel prefix")
    parser.add_argument("--no-deflate", action="store_true", help="bare: no compression")
    parser.add_argument("--link", default="", help="bare: listen:PORT or dial:PORT")
    args = parser.parse_args()
    if args.kind == "dari":
        serve_dari(args.port, args.loop, args.broker, args.prefix)
    else:
        serve_bare(args.port, args.loop, deflate=not args.no_deflate, link=args.link)


if __name__ == "__main__":
    main()
