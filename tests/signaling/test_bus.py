"""Typed messages between processes: round trips, the channel's JSON, and what is dropped."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from signaling import bus
from signaling import protocol as p
from signaling.connection import WebSocketConnection
from signaling.gate import Identity, SignalingConfig
from signaling.peers import LocalPeer
from tests.signaling.client import dial, recv_type, send
from tests.signaling.fakes import FakeGate, serve

CANDIDATE = p.RelayedCandidate(
    from_="p_a", candidate=p.IceCandidate(candidate="candidate:1 1 udp 1 10.0.0.1 9 typ host")
)
RECORD = bus.PeerRecord(
    peer_id="p_a", key="user:1", name="User 1", kind="user", can_rollback=True, seq=1, admitted=True
)
MESSAGES: list[bus.Message] = [
    bus.ToPeer(to="p_b", frame=CANDIDATE),
    bus.ToPeer(to="p_b", frame=p.RelayedOffer(from_="p_a", sdp="v=0")),
    bus.ToPeer(to="p_b", frame=p.IceRestart(from_="p_a", reason="requested")),
    bus.Chat(frame=p.ChatMessage(from_="p_a", name="User 1", text="hello", at="2026-01-01")),
    bus.Joined(record=RECORD),
    bus.Knocked(record=RECORD.model_copy(update={"kind": "guest", "admitted": False})),
    bus.Left(peer_id="p_a", reason="gone", lobby=True),
    bus.Reconnected(from_="p_a", except_="p_a"),
    bus.Replaced(to="p_a", code=4409),
    bus.Adopted(peer_id="p_a", node="n1"),
    bus.Admitted(peer_id="p_g"),
    bus.Denied(peer_id="p_g"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_broker(message: bus.Message) -> None:
    assert bus.decode(bus.encode(message)) == message


def test_the_json_is_the_room_channel_format_of_before() -> None:
    # A process of the previous release published these; this one must read them...
    old = [
        {"k": "to", "to": "p_b", "frame": CANDIDATE.dump(), "node": "n0"},
        {"k": "left", "peer_id": "p_a", "reason": "replaced", "node": "n0"},
        {"k": "restart", "from": "p_a", "except": "p_a", "node": "n0"},
        {"k": "joined", "record": RECORD.model_dump(), "node": "n0"},
    ]
    decoded = [bus.decode(json.dumps(item)) for item in old]
    assert isinstance(decoded[0], bus.ToPeer) and decoded[0].frame == CANDIDATE
    assert isinstance(decoded[1], bus.Left) and decoded[1].lobby is False
    assert isinstance(decoded[2], bus.Reconnected) and decoded[2].from_ == "p_a"
    assert isinstance(decoded[3], bus.Joined) and decoded[3].record == RECORD
    # ...and publishes the same keys, with a relayed frame as the browser's text.
    sent = json.loads(bus.encode(bus.ToPeer(to="p_b", frame=CANDIDATE)))
    assert sent["k"] == "to" and sent["frame"] == CANDIDATE.dump()
    assert set(json.loads(bus.encode(bus.Reconnected(from_="x", except_="x")))) == {
        "k",
        "from",
        "except",
        "node",
    }


def test_a_relayed_frame_reaches_the_browser_unchanged() -> None:
    message = bus.decode(bus.encode(bus.ToPeer(to="p_b", frame=CANDIDATE)))
    assert isinstance(message, bus.ToPeer)
    assert message.frame.dump() == CANDIDATE.dump()


def test_a_presence_record_keeps_its_keys() -> None:
    peer = LocalPeer(
        peer_id="p_a",
        room="r",
        identity=Identity(key="user:1", name="User 1"),
        can_rollback=False,
        seq=3,
        conn=None,
        admitted=True,
        resume_hash="h",
    )
    assert peer.record().model_dump() == {
        "peer_id": "p_a",
        "key": "user:1",
        "name": "User 1",
        "kind": "user",
        "can_rollback": False,
        "seq": 3,
        "admitted": True,
        "resume": "h",
        "node": "",
        "away": False,
    }


@pytest.mark.parametrize(
    "text",
    [
        "not json at all",
        "[1, 2]",
        '{"k": "shout", "text": "secret-words"}',
        '{"k": "left", "peer_id": "p_a", "reason": "secret-words"}',
        '{"k": "to", "to": "p_b", "frame": "{\\"type\\": \\"offer\\", \\"sdp\\": 5}"}',
        '{"k": "all", "frame": "{secret-words"}',
        '{"k": "joined", "record": {"peer_id": "p_a"}}',
    ],
)
def test_unknown_or_malformed_messages_are_refused_and_explained_without_content(
    text: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        bus.decode(text)
    explained = bus.explain(caught.value)
    assert explained and "secret" not in explained


class _GoneSocket:
    """A WebSocket whose peer has gone: every send raises like starlette's."""

    application_state = WebSocketState.CONNECTED

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def send_text(self, data: str) -> None:
        raise self.error

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error", [WebSocketDisconnect(1006), RuntimeError("closed"), ConnectionResetError()]
)
async def test_a_gone_socket_never_fails_the_sender(error: Exception) -> None:
    conn = WebSocketConnection(_GoneSocket(error))  # type: ignore[arg-type]
    await conn.send_text("{}")
    await conn.close(1000)


async def test_anything_else_is_not_hidden() -> None:
    conn = WebSocketConnection(_GoneSocket(ValueError("a bug")))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await conn.send_text("{}")


async def _room_survives_garbage(
    base: str, publish: Any, room: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = await dial(base + "/room", open_timeout=5)
    await send(a, type="join", room=room, token="user:1")
    await recv_type(a, "welcome")
    b = await dial(base + "/room", open_timeout=5)
    await send(b, type="join", room=room, token="user:2")
    welcome_b = await recv_type(b, "welcome")
    await recv_type(a, "peer-joined")
    with caplog.at_level(logging.WARNING, logger="dari.signaling.relay"):
        await publish(f"room:{room}", "secret-words, not json")
        await publish(f"room:{room}", json.dumps({"k": "all", "frame": "secret-words"}))
        await publish(f"room:{room}", json.dumps({"k": "to", "to": welcome_b["peer_id"]}))
        # The channel still works: the next message arrives as usual.
        await send(a, type="chat", text="still here")
        chat = await recv_type(b, "chat")
    assert chat["text"] == "still here"
    dropped = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(dropped) == 3
    assert all(room in line and "secret" not in line for line in dropped)
    await a.close()
    await b.close()


async def test_a_malformed_message_is_dropped_and_the_room_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve(FakeGate(), SignalingConfig(heartbeat_seconds=30)) as (base, svc):
        await _room_survives_garbage(base, svc.hub.broker.publish, "room-1", caplog)


@pytest.mark.redis
async def test_a_malformed_message_on_redis_does_not_stop_the_reader(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redis.asyncio import Redis

    url = "redis://127.0.0.1:6379/5"
    raw = Redis.from_url(url, decode_responses=True)

    async def publish(channel: str, text: str) -> None:
        await raw.publish("dari:sig:" + channel, text)

    try:
        async with serve(FakeGate(), SignalingConfig(heartbeat_seconds=30), url) as (base, _):
            room = "bus-" + secrets.token_hex(4)
            await _room_survives_garbage(base, publish, room, caplog)
    finally:
        await raw.aclose()
