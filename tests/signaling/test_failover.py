"""Failover: a signaling process dies (kill -9) and its peers keep their place in the call.

Real processes (bench/failover.py's node: join tokens, no database) on the local Redis
under a prefix of this test's own. The other processes notice the death through the
lapsed heartbeat within 5 s and tell the room `peer-away`; a peer is declared gone only
when its resume window ends, and until then it resumes on a survivor with its peer id.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from bench.failover import end, start_node
from bench.signaling_servers import token_for
from signaling import protocol as p
from signaling.broker import MemoryBroker
from signaling.bus import PeerRecord
from signaling.gate import Identity, SignalingConfig
from signaling.peers import LocalPeer, LocalPeers
from signaling.presence import Presence
from tests.signaling.client import no_frame, open_ws, recv, recv_type, send

REDIS_URL = "redis://127.0.0.1:6379/5"
RESUME = 6.0  # each node's resume window
TTL = 4.0  # presence entries expire this long after their last refresh (> the 3-s heartbeat)

# --- the rule, in one process (no Redis) --------------------------------------------------


async def test_a_lapsed_heartbeat_marks_the_peers_away_once_then_the_window_decides() -> None:
    broker = MemoryBroker()
    config = SignalingConfig(resume_seconds=0.4)
    local = LocalPeers()
    ours = LocalPeer(
        peer_id="p_ours",
        room="r",
        identity=Identity(key="user:2", name="Two"),
        can_rollback=True,
        seq=2,
        conn=None,
        admitted=True,
    )
    local.add(ours)
    aways: list[PeerRecord] = []
    ghosts: list[PeerRecord] = []

    async def on_away(room: str, record: PeerRecord) -> None:
        aways.append(record)

    async def on_ghost(room: str, record: PeerRecord) -> None:
        ghosts.append(record)

    presence = Presence(broker, config, local, on_ghost, node_id="n2", on_away=on_away)
    theirs = PeerRecord(
        peer_id="p_theirs", key="user:1", name="One", kind="user", can_rollback=True, seq=1,
        admitted=True, node="n1",
    )  # fmt: skip
    await broker.node_beat("n1", 0.2)
    await broker.presence_put("r", "p_theirs", theirs.model_dump(), 15)
    assert "p_theirs" in await presence.live("r")
    await presence.check_nodes()
    assert aways == []  # n1 still beats
    await asyncio.sleep(0.3)
    await presence.check_nodes()
    await presence.check_nodes()
    assert [r.peer_id for r in aways] == ["p_theirs"] and aways[0].away
    # Away, it still holds its slot (it may resume) until its window ends...
    assert (await presence.live("r"))["p_theirs"].away
    assert ghosts == []
    await asyncio.sleep(0.5)
    # ...then the first sweep removes it, and the leave is a timeout (Hub._ghost).
    assert "p_theirs" not in await presence.live("r")
    assert [r.peer_id for r in ghosts] == ["p_theirs"] and ghosts[0].away


async def test_a_process_taken_for_dead_that_beats_again_is_alive_again() -> None:
    broker = MemoryBroker()
    local = LocalPeers()
    local.add(
        LocalPeer(
            peer_id="p_ours", room="r", identity=Identity(key="user:2", name="Two"),
            can_rollback=True, seq=2, conn=None, admitted=True,
        )
    )  # fmt: skip
    aways: list[str] = []

    async def on_away(room: str, record: PeerRecord) -> None:
        aways.append(record.peer_id)

    async def on_ghost(room: str, record: PeerRecord) -> None:
        raise AssertionError("no ghost here")

    presence = Presence(broker, SignalingConfig(), local, on_ghost, node_id="n2", on_away=on_away)
    theirs = {"peer_id": "p_theirs", "key": "user:1", "name": "One", "kind": "user",
              "can_rollback": True, "seq": 1, "admitted": True, "node": "n1"}  # fmt: skip
    await broker.presence_put("r", "p_theirs", theirs, 15)
    await presence.live("r")
    await presence.check_nodes()  # n1 never beat: dead, its peer away
    assert aways == ["p_theirs"] and "n1" in presence.dead
    # n1 was only stalled: it beats again and rewrites its peer's entry (not away).
    await broker.node_beat("n1", 3)
    await broker.presence_put("r", "p_theirs", theirs, 15)
    assert not (await presence.live("r"))["p_theirs"].away
    await presence.check_nodes()
    assert aways == ["p_theirs"] and "n1" not in presence.dead


async def test_an_entry_that_resumed_elsewhere_is_not_marked_away() -> None:
    broker = MemoryBroker()
    record = {"peer_id": "p", "node": "n3", "away": False}
    await broker.presence_put("r", "p", record, 15)
    # The peer resumed on n3 meanwhile: the dead n1 no longer holds it.
    assert not await broker.presence_away("r", "p", "n1", time.time() + 30)
    assert await broker.presence_away("r", "p", "n3", time.time() + 30)
    assert not await broker.presence_away("r", "p", "n3", time.time() + 30)  # once


async def test_a_stalled_process_taken_for_dead_says_its_peers_are_back() -> None:
    broker = MemoryBroker()
    local = LocalPeers()
    mine = LocalPeer(
        peer_id="p_mine",
        room="r",
        identity=Identity(key="user:1", name="One"),
        can_rollback=True,
        seq=1,
        conn=object(),  # type: ignore[arg-type]  # connected; never written to here
        admitted=True,
    )
    local.add(mine)
    backs: list[str] = []

    async def on_back(peer: LocalPeer) -> None:
        backs.append(peer.peer_id)

    async def on_ghost(room: str, record: PeerRecord) -> None:
        raise AssertionError("no ghost here")

    presence = Presence(broker, SignalingConfig(), local, on_ghost, node_id="n1", on_back=on_back)
    await presence.put(mine, 15)
    # Another process took n1 for dead while its loop was blocked:
    assert await broker.presence_away("r", "p_mine", "n1", time.time() + 30)
    await presence.live("r")
    assert backs == ["p_mine"]


def test_the_away_frame_is_part_of_the_protocol() -> None:
    frame = p.parse_server('{"v": 1, "type": "peer-away", "peer_id": "p_a"}')
    assert isinstance(frame, p.PeerAway) and frame.peer_id == "p_a"


# --- across real processes on Redis -------------------------------------------------------

Node = tuple[subprocess.Popen[bytes], str]


@pytest.fixture
def prefix() -> str:
    return f"dari:test-failover:{secrets.token_hex(4)}:"


@pytest.fixture
def nodes(prefix: str) -> Iterator[list[Node]]:
    """Two signaling processes (A, B) on this test's prefix; more may be appended."""
    started: list[Node] = []
    try:
        for _ in range(2):
            process, port = start_node(REDIS_URL, prefix, resume=RESUME, refresh=0.5, ttl=TTL)
            started.append((process, f"http://127.0.0.1:{port}"))
        yield started
    finally:
        for process, _ in started:
            end(process)


async def joined(base: str, room: str, user: int, resume: str | None = None) -> Any:
    ws = await open_ws(base, origin=None)
    await send(ws, type="join", room=room, token=token_for(user, room), resume_token=resume)
    return ws, await recv_type(ws, "welcome")


async def next_frame(ws: ClientConnection, kinds: set[str], wait: float) -> dict[str, Any]:
    """The next frame of one of these types (pongs and the rest skipped)."""
    async with asyncio.timeout(wait):
        while True:
            frame = await recv(ws, wait)
            if frame["type"] in kinds:
                return frame


@pytest.mark.redis
@pytest.mark.slow
async def test_a_killed_process_peer_is_away_within_5_s_and_left_only_after_its_window(
    nodes: list[Node],
) -> None:
    (a, base_a), (_, base_b) = nodes
    room = "r-" + secrets.token_hex(4)
    x, x_welcome = await joined(base_a, room, 1)
    y, _ = await joined(base_b, room, 2)
    await recv_type(x, "peer-joined")
    killed = time.monotonic()
    a.send_signal(signal.SIGKILL)
    away = await next_frame(y, {"peer-away", "peer-left"}, wait=10)
    away_at = time.monotonic()
    assert away["type"] == "peer-away" and away["peer_id"] == x_welcome["peer_id"]
    assert away_at - killed < 5.0
    left = await next_frame(y, {"peer-left"}, wait=RESUME + 10)
    assert left["peer_id"] == x_welcome["peer_id"] and left["reason"] == "timeout"
    # Not before its resume window (counted from the away) had ended.
    assert time.monotonic() - away_at >= RESUME - 0.2


@pytest.mark.redis
@pytest.mark.slow
async def test_both_peers_of_a_killed_process_resume_on_the_survivor_and_nobody_leaves(
    nodes: list[Node],
) -> None:
    (a, base_a), (_, base_b) = nodes
    room = "r-" + secrets.token_hex(4)
    x, x_welcome = await joined(base_a, room, 1)
    y, y_welcome = await joined(base_a, room, 2)
    await recv_type(x, "peer-joined")
    a.send_signal(signal.SIGKILL)
    a.wait()
    # Nobody served the room meanwhile, and their entries expired: still, they resume.
    await asyncio.sleep(TTL + 0.5)
    x2, again = await joined(base_b, room, 1, resume=x_welcome["resume_token"])
    assert again["resumed"] is True and again["peer_id"] == x_welcome["peer_id"]
    assert [(p["peer_id"], p["away"]) for p in again["peers"]] == [(y_welcome["peer_id"], True)]
    y2, y_again = await joined(base_b, room, 2, resume=y_welcome["resume_token"])
    assert y_again["resumed"] is True and y_again["peer_id"] == y_welcome["peer_id"]
    back = await next_frame(x2, {"ice-restart", "peer-left"}, wait=5)
    assert back["type"] == "ice-restart" and back["from"] == y_welcome["peer_id"]
    # Past the window, still nobody has left.
    deadline = time.monotonic() + RESUME + 1
    while time.monotonic() < deadline:
        await send(x2, type="ping")
        frame = await next_frame(x2, {"pong", "peer-left"}, wait=5)
        assert frame["type"] == "pong", frame
        await asyncio.sleep(0.5)
    del x, y, y2


@pytest.mark.redis
@pytest.mark.slow
async def test_a_cleanly_stopped_process_hands_its_peers_over(nodes: list[Node]) -> None:
    (a, base_a), (_, base_b) = nodes
    room = "r-" + secrets.token_hex(4)
    x, x_welcome = await joined(base_a, room, 1)
    y, _ = await joined(base_b, room, 2)
    await recv_type(x, "peer-joined")
    a.send_signal(signal.SIGTERM)
    away = await next_frame(y, {"peer-away", "peer-left"}, wait=10)
    assert away["type"] == "peer-away" and away["peer_id"] == x_welcome["peer_id"]
    x2, again = await joined(base_b, room, 1, resume=x_welcome["resume_token"])
    assert again["resumed"] is True and again["peer_id"] == x_welcome["peer_id"]
    back = await next_frame(y, {"ice-restart", "peer-left"}, wait=5)
    assert back["type"] == "ice-restart" and back["reason"] == "reconnected"
    assert await no_frame(y, 1.0)
    await send(y, type="chat", text="still here")
    assert json.dumps((await recv_type(x2, "chat"))["text"]) == '"still here"'
