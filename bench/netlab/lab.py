"""The lab's plumbing: the network namespace, coturn and the impairing relay.

`namespace()` is made from outside, as root: one namespace with its loopback up and one
veth pair carrying documentation addresses (192.0.2.0/24, never a private range), so
that Chromium has an interface to gather candidates on and every packet stays inside.
Everything else runs inside it: coturn on TURN_IP, the relay on RELAY_IP (the patient's
side: the GP page's TURN traffic goes through it), Dari on the namespace's 127.0.0.1,
and Chromium.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from bench.netlab.relay import Impairment, Relay

TURN_IP = "192.0.2.1"
RELAY_IP = "192.0.2.2"
TURN_PORT = 3478
TURN_SECRET = "netlab-secret-not-for-production"
TURN_REALM = "dari.lab"

T = TypeVar("T")


class LabError(RuntimeError):
    """The lab cannot run here: said loudly, never skipped."""


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    if result.returncode != 0:
        raise LabError(f"{' '.join(args)}: {result.stderr.strip() or result.returncode}")


def require_root_tools() -> None:
    if os.geteuid() != 0:
        raise LabError("the network lab needs root (ip netns): run it as root, as CI does")
    for tool in ("ip", "turnserver"):
        if shutil.which(tool) is None:
            hint = " (apt-get install -y coturn)" if tool == "turnserver" else ""
            raise LabError(f"{tool} not found{hint}")


@contextmanager
def namespace(name: str) -> Iterator[str]:
    """A namespace with lo up and veth lab0 (TURN_IP) / lab1 (RELAY_IP); deleted after."""
    require_root_tools()
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", name, "link", "add", "lab0", "type", "veth", "peer", "name", "lab1")
        _run("ip", "-n", name, "addr", "add", f"{TURN_IP}/24", "dev", "lab0")
        _run("ip", "-n", name, "addr", "add", f"{RELAY_IP}/24", "dev", "lab1")
        _run("ip", "-n", name, "link", "set", "lab0", "up")
        _run("ip", "-n", name, "link", "set", "lab1", "up")
        yield name
    finally:
        # Whatever still runs inside was started by us; deleting the namespace ends
        # its network (the processes themselves were stopped by the inner run).
        subprocess.run(["ip", "netns", "del", name], timeout=20, check=False)


class Coturn:
    """Debian's coturn in the foreground, REST-style secrets, verbose log to a file."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text("")
        self.process = subprocess.Popen(
            [
                "turnserver",
                "-n",
                "--listening-ip",
                TURN_IP,
                "--relay-ip",
                TURN_IP,
                "--listening-port",
                str(TURN_PORT),
                "--allow-loopback-peers",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--use-auth-secret",
                f"--static-auth-secret={TURN_SECRET}",
                "--realm",
                TURN_REALM,
                "--fingerprint",
                "--min-port",
                "49160",
                "--max-port",
                "49400",
                "--verbose",
                "--simple-log",
                f"--log-file={self.log}",
                "--no-stdout-log",
                "--pidfile",
                str(self.log.with_suffix(".pid")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabError(f"turnserver exited: {self.text()[-2000:]}")
            if "listener opened on" in self.text() or "Total UDP servers" in self.text():
                return
            time.sleep(0.1)
        raise LabError(f"turnserver did not start: {self.text()[-2000:]}")

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def relayed(self, since: int = 0) -> dict[str, int]:
        """Allocations and relayed bytes in the log after offset `since`.

        coturn logs `usage: ... rp=, rb=, sp=, sb=` for each session periodically and
        when it closes; the highest figures seen per session are its totals.
        """
        text = self.text()[since:]
        allocations = len(re.findall(r"ALLOCATE processed, success", text))
        per_session: dict[str, tuple[int, int]] = {}
        for match in re.finditer(r"session (\d+): usage: .*?rb=(\d+), .*?sb=(\d+)", text):
            session, rb, sb = match.group(1), int(match.group(2)), int(match.group(3))
            old = per_session.get(session, (0, 0))
            per_session[session] = (max(old[0], rb), max(old[1], sb))
        return {
            "allocations": allocations,
            "sessions": len(per_session),
            "bytes_received": sum(v[0] for v in per_session.values()),
            "bytes_sent": sum(v[1] for v in per_session.values()),
        }


class RelayThread:
    """The relay on its own event loop in a thread, steered from the measuring thread."""

    def __init__(self) -> None:
        self.relay = Relay((RELAY_IP, TURN_PORT), (TURN_IP, TURN_PORT))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="netlab-relay", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        await self.relay.start()
        self._started.set()
        await self._stop.wait()
        self.relay.close()

    def start(self) -> None:
        self.thread.start()
        if not self._started.wait(10):
            raise LabError("the relay did not start")

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn in the relay's loop and return its result."""

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def set(self, impairment: Impairment) -> None:
        self.call(self.relay.set_impairment, impairment, impairment)

    def cut(self, seconds: float) -> None:
        self.call(self.relay.cut, seconds)

    def counters(self) -> dict[str, dict[str, int]]:
        return self.call(self.relay.counters)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=10)
