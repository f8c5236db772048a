"""Presence under load: an expired entry of a process that still beats is not a ghost,
and a process that was slow or stopped re-creates the entries another one swept.

Issue 15: under load (or SIGSTOP), another process swept the entries of connected
peers and they never came back (`unknown_peer` for every frame to them). Redis under a
prefix of each test's own; the last test runs real processes and stops one.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bench.failover import end, start_node
from signaling.broker import Broker, MemoryBroker, RedisBroker
from signaling.bus import PeerRecord
from signaling.gate import Identity, SignalingConfig
from signaling.peers import LocalPeer, LocalPeers
from signaling.presence import Presence
from tests.signaling.client import recv_type, send
from tests.signaling.test_failover import joined, next_frame

REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "memory":
        yield MemoryBroker()
        return
    redis = RedisBroker(REDIS_URL, f"dari:test-presence:{secrets.token_hex(4)}:")
    await redis.connect()
    try:
        yield redis
    finally:
        await redis.disconnect()


def peer(peer_id: str, *, connected: bool = True) -> LocalPeer:
    return LocalPeer(
        peer_id=peer_id, room="r", identity=Identity(key=f"user:{peer_id}", name=peer_id),
        can_rollback=True, seq=1, conn=object() if connected else None,  # type: ignore[arg-type]
        admitted=True,
    )  # fmt: skip


def theirs(peer_id: str, node: str) -> dict[str, object]:
    return PeerRecord(
        peer_id=peer_id, key="user:9", name="Nine", kind="user", can_rollback=True, seq=1,
        admitted=True, node=node,
    ).model_dump()  # fmt: skip


class Seen:
    """What a Presence told its hub."""

    def __init__(self) -> None:
        self.ghosts: list[str] = []
        self.aways: list[str] = []
        self.backs: list[str] = []
        self.restored: list[str] = []

    def presence(self, broker: Broker, local: LocalPeers, node: str) -> Presence:
        async def on_ghost(room: str, record: PeerRecord) -> None:
            self.ghosts.append(record.peer_id)

        async def on_away(room: str, record: PeerRecord) -> None:
            self.aways.append(record.peer_id)

        async def on_back(peer: LocalPeer) -> None:
            self.backs.append(peer.peer_id)

        async def on_restored(peer: LocalPeer) -> None:
            self.restored.append(peer.peer_id)

        return Presence(
            broker, SignalingConfig(resume_seconds=30), local, on_ghost, node_id=node,
            on_away=on_away, on_back=on_back, on_restored=on_restored,
        )  # fmt: skip


async def test_an_expired_entry_of_a_live_process_is_not_swept(broker: Broker) -> None:
    seen = Seen()
    presence = seen.presence(broker, LocalPeers(), "n2")
    await broker.node_beat("n1", 5)
    await broker.presence_put("r", "p_slow", theirs("p_slow", "n1"), 0.05)
    await broker.presence_put("r", "p_old", theirs("p_old", ""), 0.05)  # an older release's
    await asyncio.sleep(0.1)
    live = await presence.live("r")
    # n1 beats: it was only slow to refresh, its entry stays (and counts as present).
    assert "p_slow" in live and not live["p_slow"].away
    assert "p_slow" in await broker.presence_all("r")
    # An expired entry naming no process is a ghost, as before.
    assert seen.ghosts == ["p_old"] and seen.aways == []
    # n1 dies: now its expired peer is marked away (the failover rule), not removed.
    await broker.node_gone("n1")
    assert (await presence.live("r"))["p_slow"].away
    assert seen.aways == ["p_slow"] and seen.ghosts == ["p_old"]


async def test_liveness_is_asked_once_per_process_and_sweep(broker: Broker) -> None:
    seen = Seen()
    presence = seen.presence(broker, LocalPeers(), "n2")
    await broker.node_beat("n1", 5)
    for n in range(20):
        await broker.presence_put("r", f"p{n}", theirs(f"p{n}", "n1"), 0.01)
    await asyncio.sleep(0.05)
    asked: list[list[str]] = []
    nodes_alive = broker.nodes_alive

    async def counting(nodes: list[str]) -> dict[str, str]:
        asked.append(nodes)
        return await nodes_alive(nodes)

    broker.nodes_alive = counting  # type: ignore[method-assign]
    assert len(await presence.live("r")) == 20
    assert asked == [["n1"]]


async def test_a_swept_entry_of_a_live_process_comes_back_at_its_next_refresh(
    broker: Broker,
) -> None:
    local = LocalPeers()
    for peer_id in ("p_a", "p_b", "p_c"):
        local.add(peer(peer_id))
    seen = Seen()
    owner = seen.presence(broker, local, "n1")
    other = Seen().presence(broker, LocalPeers(), "n2")
    for one in local.all():
        await owner.put(one, 15)
    # Another process swept p_a (the old bug) and marked p_b away (took n1 for dead).
    assert await broker.presence_remove("r", "p_a")
    assert await broker.presence_away("r", "p_b", "n1", time.time() + 30)
    await owner.refresh()
    assert seen.restored == ["p_a"] and seen.backs == ["p_b"]
    entries = await broker.presence_all("r")
    assert entries["p_a"][0]["node"] == "n1" and entries["p_a"][1] > time.time() + 10
    # The other process finds it again (its relay reads this).
    await broker.node_beat("n1", 5)
    assert {"p_a", "p_c"} <= set(await other.live("r"))
    await owner.refresh()
    assert seen.restored == ["p_a"]  # once
    # (This Seen does not rewrite p_b as the hub does: it is still away, said back again.)
    assert seen.backs == ["p_b", "p_b"]
    # A read sent before p_b was said back, answered after: the room is not told twice.
    b = local.get("p_b")
    assert b is not None
    await owner.put(b, 15)  # as the hub's on_back does
    assert await broker.presence_away("r", "p_b", "n1", time.time() + 30)
    stale = await broker.presence_all("r")

    async def slow_read(room: str) -> dict[str, tuple[dict[str, Any], float]]:
        await owner.refresh()  # said back while this read was on its way
        await owner.put(b, 15)
        return stale

    broker.presence_all = slow_read  # type: ignore[method-assign]
    await owner.live("r")
    assert seen.backs == ["p_b", "p_b", "p_b"]


async def test_the_refresh_never_resurrects_a_peer_that_left_or_was_replaced(
    broker: Broker,
) -> None:
    local = LocalPeers()
    stays, replaced, dropped = peer("p_stays"), peer("p_replaced"), peer("p_dropped")
    for one in (stays, replaced, dropped):
        local.add(one)
    seen = Seen()
    owner = seen.presence(broker, local, "n1")
    for one in local.all():
        await owner.put(one, 15)
    # p_dropped's socket is gone (it is away, its own timer decides); p_replaced resumed
    # on n3 in another tab; a peer that left is no longer in `local` at all.
    dropped.conn = None
    assert await broker.presence_remove("r", "p_dropped")
    await broker.presence_put("r", "p_replaced", theirs("p_replaced", "n3"), 15)
    await owner.refresh()
    entries = await broker.presence_all("r")
    assert "p_dropped" not in entries and entries["p_replaced"][0]["node"] == "n3"
    assert seen.restored == [] and seen.backs == []
    # A newer tab's entry written meanwhile is never overwritten by a restore.
    assert not await broker.presence_restore("r", "p_replaced", {"node": "n1"}, 15)
    assert (await broker.presence_all("r"))["p_replaced"][0]["node"] == "n3"


@pytest.mark.redis
async def test_the_refresh_of_many_rooms_is_one_round_trip() -> None:
    broker = RedisBroker(REDIS_URL, f"dari:test-presence:{secrets.token_hex(4)}:")
    await broker.connect()
    try:
        local = LocalPeers()
        owner = Seen().presence(broker, local, "n1")
        for n in range(50):
            one = peer(f"p{n}")
            one.room = f"room{n}"
            local.add(one)
            await owner.put(one, 15)
        sent: list[object] = []
        pipeline = broker._redis.pipeline

        def counting(*args: object, **kwargs: object) -> object:
            sent.append(args)
            return pipeline(*args, **kwargs)  # type: ignore[arg-type]

        broker._redis.pipeline = counting  # type: ignore[method-assign, assignment]
        await owner.refresh()
        assert len(sent) == 1
        scores = [entry[1] for room in local.rooms() for entry in
                  (await broker.presence_all(room)).values()]  # fmt: skip
        assert len(scores) == 50 and min(scores) > time.time() + 14
    finally:
        await broker.disconnect()


@pytest.mark.redis
async def test_many_simultaneous_commands_wait_for_the_pool_instead_of_failing() -> None:
    broker = RedisBroker(REDIS_URL, f"dari:test-presence:{secrets.token_hex(4)}:")
    await broker.connect()
    try:
        # 300 at once, past the pool's size (redis-py's default pool raised
        # MaxConnectionsError past 100 in flight): all succeed.
        seqs = await asyncio.gather(*(broker.next_seq("r") for _ in range(300)))
        assert sorted(seqs) == list(range(1, 301))
        assert broker._pool.max_connections == RedisBroker.POOL_SIZE
    finally:
        await broker.disconnect()


# --- a real process stopped (SIGSTOP) past the resume window ---------------------------


@pytest.fixture
def two_nodes() -> Iterator[list[tuple[object, str]]]:
    prefix = f"dari:test-presence:{secrets.token_hex(4)}:"
    started = []
    try:
        for _ in range(2):
            process, port = start_node(REDIS_URL, prefix, resume=3.0, refresh=0.5, ttl=2.0)
            started.append((process, f"http://127.0.0.1:{port}"))
        yield started  # type: ignore[misc]
    finally:
        for process, _ in started:
            end(process)


@pytest.mark.redis
@pytest.mark.slow
async def test_a_frozen_process_comes_back_with_its_peers_reachable(
    two_nodes: list[tuple[object, str]],
) -> None:
    (a, base_a), (_, base_b) = two_nodes
    room = "r-" + secrets.token_hex(4)
    x, x_welcome = await joined(base_a, room, 1)
    y, y_welcome = await joined(base_b, room, 2)
    await recv_type(x, "peer-joined")
    x_id, y_id = x_welcome["peer_id"], y_welcome["peer_id"]
    a.send_signal(signal.SIGSTOP)  # type: ignore[attr-defined]
    try:
        # B takes A for dead (away), then its resume window ends (left): the worst case.
        away = await next_frame(y, {"peer-away"}, wait=10)
        assert away["peer_id"] == x_id
        left = await next_frame(y, {"peer-left"}, wait=10)
        assert left["peer_id"] == x_id
    finally:
        a.send_signal(signal.SIGCONT)  # type: ignore[attr-defined]
    # A resumes: it restores x's entry and the room hears x joined again.
    back = await next_frame(y, {"peer-joined"}, wait=10)
    assert back["peer"]["peer_id"] == x_id
    # Both ways across the processes, nobody is unknown.
    await send(y, type="offer", to=x_id, sdp="v=0 back")
    assert (await next_frame(x, {"offer", "error"}, wait=5))["sdp"] == "v=0 back"
    await send(x, type="answer", to=y_id, sdp="v=0 answer")
    assert (await next_frame(y, {"answer", "error"}, wait=5))["sdp"] == "v=0 answer"


async def test_a_peer_still_joining_is_not_restored_before_its_first_write() -> None:
    broker = MemoryBroker()
    local = LocalPeers()
    local.add(peer("p_joining"))  # added, its entry not written yet (Hub._attach)
    seen = Seen()
    await seen.presence(broker, local, "n1").refresh()
    assert seen.restored == [] and await broker.presence_all("r") == {}
