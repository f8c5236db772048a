"""The relay's fast paths keep its rules: one-pass parsing, remembered members, the publisher."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling import bus
from signaling import protocol as p
from signaling.broker import MemoryBroker, RedisBroker
from signaling.gate import Identity, SignalingConfig
from signaling.peers import LocalPeer, LocalPeers
from signaling.presence import Presence
from signaling.relay import RoomChannel
from tests.signaling.client import recv_type, send
from tests.signaling.fakes import FakeGate, serve
from tests.signaling.test_service import joined

REDIS_URL = "redis://127.0.0.1:6379/5"

# --- one-pass parsing ---------------------------------------------------------------------

FIELDS = ["v", "type", "to", "sdp", "room", "token", "candidate", "text", "ts", "peer", "extra"]
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.floats(allow_nan=False)
    | st.sampled_from([*sorted(p.CLIENT_TYPES), "welcome", "", "p_a", "v=0"])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner),
    max_leaves=6,
)
FRAMES = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5)


def outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        return "frame", parse(text).model_dump(by_alias=True)
    except p.ProtocolError as error:
        return "error", (error.code, error.message)


@settings(max_examples=400, deadline=None)
@given(FRAMES, st.sampled_from(["valid", "as is", "not json", "array"]))
def test_one_pass_parsing_accepts_and_refuses_exactly_as_step_by_step(
    frame: dict[str, Any], shape: str
) -> None:
    if shape == "valid":
        frame = {**frame, "type": "candidate", "to": "p_b", "candidate": {"candidate": "c"}}
        frame.pop("v", None)
    text = json.dumps(frame)
    if shape == "not json":
        text = text[:-1]
    elif shape == "array":
        text = json.dumps([frame])
    assert outcome(p.parse_client, text) == outcome(p.parse_client_stepwise, text)


def test_known_refusals_keep_their_codes() -> None:
    cases = {
        '{"type":"offer","to":"p_b","sdp":"v=0","v":2}': "unsupported_version",
        '{"type":"nope"}': "bad_frame",
        "[1]": "bad_frame",
        "{": "bad_frame",
        '{"type":"offer","to":"","sdp":"v=0"}': "bad_frame",
    }
    for text, code in cases.items():
        with pytest.raises(p.ProtocolError) as caught:
            p.parse_client(text)
        assert caught.value.code == code, text


# --- delivery on the receiving process ------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_text(self, data: str) -> None:
        self.sent.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        return None


async def _no_ghost(room: str, record: bus.PeerRecord) -> None:
    return None


async def _no_control(room: str, message: Any) -> None:
    return None


def _peer(peer_id: str, room: str, *, admitted: bool) -> tuple[LocalPeer, Recorder]:
    conn = Recorder()
    identity = Identity(key=f"user:{peer_id}", name=peer_id)
    peer = LocalPeer(peer_id, room, identity, True, 1, conn, admitted=admitted)
    return peer, conn


async def test_a_frame_from_the_broker_reaches_only_an_admitted_peer_of_that_room() -> None:
    broker, local = MemoryBroker(), LocalPeers()
    presence = Presence(broker, SignalingConfig(), local, _no_ghost)
    channel = RoomChannel(broker, local, presence, "node-b", _no_control)
    guest, guest_conn = _peer("p_guest", "room-1", admitted=False)
    member, member_conn = _peer("p_member", "room-1", admitted=True)
    elsewhere, elsewhere_conn = _peer("p_else", "room-2", admitted=True)
    for peer in (guest, member, elsewhere):
        local.add(peer)
    offer = p.RelayedOffer(from_="p_a", sdp="v=0")
    for to in ("p_guest", "p_member", "p_else"):
        text = bus.encode(bus.ToPeer(to=to, frame=offer, node="node-a"))
        await channel._receive("room-1", text)
    assert guest_conn.sent == [] and elsewhere_conn.sent == []
    assert [json.loads(text)["from"] for text in member_conn.sent] == ["p_a"]


# --- across two processes (Redis) -----------------------------------------------------------


@pytest.mark.redis
async def test_a_peer_on_another_process_is_reached_and_once_gone_is_unknown() -> None:
    """The members remembered for relaying are forgotten as soon as the room hears a leave."""
    config = SignalingConfig(heartbeat_seconds=30)
    room = "relay-" + secrets.token_hex(4)
    async with (
        serve(FakeGate(), config, REDIS_URL) as (base_a, _),
        serve(FakeGate(), config, REDIS_URL) as (base_b, _),
    ):
        a, welcome_a = await joined(base_a, "user:1", room=room)
        b, welcome_b = await joined(base_b, "user:2", room=room)
        await recv_type(a, "peer-joined")
        for n in range(3):  # the first read presence; the next ones were remembered
            await send(a, type="offer", to=welcome_b["peer_id"], sdp=f"v={n}")
            offer = await recv_type(b, "offer")
            assert offer["from"] == welcome_a["peer_id"] and offer["sdp"] == f"v={n}"
        await send(b, type="leave")
        assert (await recv_type(a, "peer-left"))["peer_id"] == welcome_b["peer_id"]
        await send(a, type="offer", to=welcome_b["peer_id"], sdp="v=late")
        assert (await recv_type(a, "error"))["code"] == "unknown_peer"
        await a.close()


@pytest.mark.redis
async def test_publishes_arrive_in_order_and_survive_a_lost_connection() -> None:
    prefix = f"test:{secrets.token_hex(4)}:"
    sender, receiver = RedisBroker(REDIS_URL, prefix), RedisBroker(REDIS_URL, prefix)
    await sender.connect()
    await receiver.connect()
    got: list[str] = []
    arrived = asyncio.Event()

    async def handler(text: str) -> None:
        got.append(text)
        if len(got) in {200, 201}:
            arrived.set()

    try:
        await receiver.subscribe("ch", handler)
        # Concurrent publishers share one pipelined connection: order is kept.
        await asyncio.gather(*(sender.publish("ch", f"m{n}") for n in range(200)))
        await asyncio.wait_for(arrived.wait(), 5)
        assert got == [f"m{n}" for n in range(200)]
        # Redis drops the publishing connection (only it: the server is shared); the
        # next publishes connect again.
        arrived.clear()
        first = sender._publisher._conn
        host, port = first._writer.get_extra_info("sockname")[:2]
        await receiver._redis.client_kill_filter(addr=f"{host}:{port}")
        for _ in range(50):
            try:
                await sender.publish("ch", "after")
                break
            except sender.errors:
                await asyncio.sleep(0.1)
        await asyncio.wait_for(arrived.wait(), 5)
        assert got[-1] == "after" and sender._publisher._conn is not first
    finally:
        await sender.disconnect()
        await receiver.disconnect()


async def test_a_publish_to_an_unreachable_redis_fails_with_a_broker_error() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0")
    with pytest.raises(broker.errors):
        await broker.publish("ch", "hello")
    await broker._publisher.close()
