"""Failover in Chromium: two `dari serve` processes behind HAProxy, one killed mid-call.

The GP and the specialist are in a call through the balancer's one address. The
process holding both of them is killed (kill -9): their pages reconnect by themselves
through the same address to the survivor and resume (same peer ids), nobody hears a
leave, and the media keeps flowing the whole time on the same peer connections. The
killed process is started again; one page moves to it; then the process holding only
the other peer is killed while that peer's page is offline for a while: the GP's page
says the specialist is reconnecting (within 5 s) and keeps the call until they are back,
17 s later (past the presence TTL that used to end the call).
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser
from redis import Redis
from sqlmodel import Session

from bench.failover import end, start_haproxy
from server import migrate
from tests.conftest import observer_engine, start_server
from tests.web.browser_fixtures import browser_login, wait_until
from tests.web.support import make_call_case

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.redis]

REDIS_URL = "redis://127.0.0.1:6379/5"

# Every WebSocket the page opens and every frame it receives (type and peer), recorded
# before the page's own scripts run.
RECORDER = """
(() => {
  const Native = window.WebSocket;
  const seen = { urls: [], frames: [] };
  window.__dariSeen = seen;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      seen.urls.push(String(url));
      this.addEventListener("message", (event) => {
        try {
          const f = JSON.parse(event.data);
          seen.frames.push(f.type + ":" + (f.peer_id || f.from || ""));
        } catch (e) { /* not ours */ }
      });
    }
  };
})();
"""


@dataclass
class Site:
    """Two app processes (A, B) on one database and Redis prefix, behind HAProxy."""

    database_url: str
    var_dir: Path
    prefix: str
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    balancer: subprocess.Popen[bytes] | None = None
    base: str = ""
    folder: Path | None = None

    def start(self, index: int, port: int | None = None) -> None:
        env = {"DARI_REDIS_URL": REDIS_URL, "DARI_SIGNALING_BROKER_PREFIX": self.prefix}
        process, base = start_server(self.database_url, self.var_dir, port=port, extra_env=env)
        port = int(base.rsplit(":", 1)[1])
        if index < len(self.processes):
            self.processes[index] = process
        else:
            self.processes.append(process)
            self.ports.append(port)

    def kill(self, index: int) -> None:
        process = self.processes[index]
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
        self.processes[index] = None

    def close(self) -> None:
        if self.balancer is not None:
            end(self.balancer)
        for process in self.processes:
            if process is not None:
                end(process)
                if process.stderr:
                    process.stderr.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    database_url = f"sqlite:///{tmp_path / 'dari.sqlite3'}"
    migrate.upgrade(database_url)
    built = Site(database_url, tmp_path, f"dari:test-failover-web:{secrets.token_hex(4)}:")
    try:
        built.start(0)
        built.start(1)
        # `first`: every connection to A while it is up, so the test knows who holds whom.
        built.balancer, port, built.folder = start_haproxy(built.ports, balance="first")
        built.base = f"http://127.0.0.1:{port}"
        yield built
    finally:
        built.close()


def inbound_bytes(page: Any) -> int:
    value: int = page.evaluate("() => window.dariCall.inbound('bytesReceived')")
    return value


def connected(page: Any) -> bool:
    states: list[str] = page.evaluate("() => window.dariCall.connectionStates()")
    return states == ["connected"]


def resumed(page: Any, peer_id: str, token: str) -> bool:
    """Its socket is open again and a new welcome (new resume token) kept its peer id."""
    state: dict[str, Any] = page.evaluate(
        "() => ({open: window.dariCall.socketOpen(), id: window.dariCall.state.peerId,"
        " token: window.dariCall.state.resumeToken})"
    )
    if not state["open"] or state["token"] == token:
        return False
    assert state["id"] == peer_id, "a fresh join instead of a resume"
    return True


def same_connection(page: Any) -> bool:
    kept: bool = page.evaluate(
        "() => Array.from(window.dariCall.state.peers.values())[0].pc === window.__dariPc"
    )
    return kept


def holders(site: Site, room: str) -> dict[str, str]:
    """peer id -> the node holding it, from the presence records in Redis."""
    import json

    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        records = redis.hgetall(f"{site.prefix}peers:{room}")
    finally:
        redis.close()
    return {str(peer_id): str(json.loads(raw)["node"]) for peer_id, raw in records.items()}


def kill_and_follow(site: Site, index: int, pages: list[Any], movers: list[Any]) -> None:
    """Kill process `index` mid-call; media flows on throughout on every page, and the
    pages it held (`movers`) resume through the balancer."""
    ids = [page.evaluate("() => window.dariCall.state.peerId") for page in movers]
    tokens = [page.evaluate("() => window.dariCall.state.resumeToken") for page in movers]
    before = [inbound_bytes(page) for page in pages]
    site.kill(index)
    time.sleep(1.5)
    during = [inbound_bytes(page) for page in pages]
    assert all(d > b for d, b in zip(during, before, strict=True)), (before, during)
    for page, peer_id, token in zip(movers, ids, tokens, strict=True):
        wait_until(partial(resumed, page, peer_id, token), timeout=30)
    wait_until(lambda: all(connected(page) for page in pages), timeout=30)
    time.sleep(1.5)
    after = [inbound_bytes(page) for page in pages]
    assert all(a > d for a, d in zip(after, during, strict=True)), (during, after)
    assert all(same_connection(page) for page in pages)


def test_killing_a_signaling_process_mid_call_keeps_the_call(browser: Browser, site: Site) -> None:
    with Session(observer_engine(site.database_url), expire_on_commit=False) as db:
        case = make_call_case(db)
    room = case.consult.public_id
    pages = []
    for user in (case.gp, case.specialist):
        context = browser.new_context(base_url=site.base, locale="en-GB")
        context.set_default_timeout(20_000)
        context.add_init_script(RECORDER)
        page = context.new_page()
        browser_login(page, user)
        page.goto(f"/consults/{room}/call")
        pages.append(page)
    gp, specialist = pages
    try:
        wait_until(lambda: connected(gp) and connected(specialist), timeout=30)
        wait_until(lambda: inbound_bytes(gp) > 0 and inbound_bytes(specialist) > 0, timeout=30)
        for page in pages:
            page.evaluate(
                "() => { window.__dariPc = Array.from(window.dariCall.state.peers.values())[0].pc;"
                " }"
            )
        gp_id, sp_id = (page.evaluate("() => window.dariCall.state.peerId") for page in pages)
        assert len(set(holders(site, room).values())) == 1  # both on A

        # A holds both peers: killed, both come back through the balancer to B.
        kill_and_follow(site, 0, pages, movers=pages)

        # A is back (same port); the GP's page reconnects and lands there, the
        # specialist stays on B: each process now holds one of them.
        site.start(0, port=site.ports[0])
        time.sleep(1.5)  # HAProxy's health check sees A up again
        token = gp.evaluate("() => window.dariCall.state.resumeToken")
        gp.evaluate("() => window.dariCall.dropSignaling()")
        wait_until(lambda: resumed(gp, gp_id, token), timeout=30)
        nodes = holders(site, room)
        assert nodes[gp_id] != nodes[sp_id]

        # B, holding only the specialist, is killed while the specialist's page cannot
        # reach any server for a while (its media path is untouched): the GP's page
        # hears that the specialist is away within 5 s and says "reconnecting" for
        # them, keeps the call, and hears them back once they resume.
        specialist.context.set_offline(True)
        killed = time.monotonic()
        before = inbound_bytes(gp)
        site.kill(1)
        wait_until(lambda: gp.evaluate("() => window.dariCall.awayPeers()") == [sp_id], timeout=10)
        assert time.monotonic() - killed < 5.0
        assert gp.get_attribute("#call-status", "data-state") == "peerAway"
        # Past the 15 s after which a dead process's peers used to be swept as gone
        # (and the page hung up): still away, still in the call, media still flowing.
        time.sleep(max(0.0, 17.0 - (time.monotonic() - killed)))
        assert gp.evaluate("() => window.dariCall.awayPeers()") == [sp_id]
        assert inbound_bytes(gp) > before and connected(gp)
        sp_token = specialist.evaluate("() => window.dariCall.state.resumeToken")
        specialist.context.set_offline(False)
        wait_until(lambda: resumed(specialist, sp_id, sp_token), timeout=30)
        wait_until(lambda: gp.evaluate("() => window.dariCall.awayPeers()") == [], timeout=10)
        assert gp.get_attribute("#call-status", "data-state") in ("peerBack", "connected")
        during = [inbound_bytes(page) for page in pages]
        time.sleep(1.5)
        after = [inbound_bytes(page) for page in pages]
        assert all(a > d for a, d in zip(after, during, strict=True)), (during, after)
        assert all(same_connection(page) for page in pages)

        for page in pages:
            seen: dict[str, list[str]] = page.evaluate("() => window.__dariSeen")
            # Nobody was ever told that anyone left...
            assert not [f for f in seen["frames"] if f.startswith("peer-left")], seen["frames"]
            # ...every socket went to the balancer's one address...
            assert seen["urls"] and all(
                url.startswith(site.base.replace("http://", "ws://")) for url in seen["urls"]
            )
            # ...and nobody hung up.
            assert page.evaluate("() => window.dariCall.state.ended") is False
            assert page.get_attribute("#call-status", "data-state") != "ended"
        assert holders(site, room).keys() == {gp_id, sp_id}
    finally:
        for page in pages:
            page.context.close()
