"""Direct links between processes (signaling/links.py): used, broken, refused, fed garbage.

Two services on one event loop share Redis under a prefix of the test's own, as two
processes would; each has its link listener on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from signaling import bus
from signaling import protocol as p
from signaling.app import SignalingService
from signaling.gate import SignalingConfig
from signaling.links import Links, node_channel
from tests.signaling.client import recv_type, send
from tests.signaling.fakes import FakeGate, serve
from tests.signaling.test_service import joined

REDIS_URL = "redis://127.0.0.1:6379/5"
SECRET = "links-test-secret"
pytestmark = pytest.mark.redis

Pair = tuple[ClientConnection, ClientConnection, str, str, SignalingService, SignalingService]


def links_of(service: SignalingService) -> Links:
    links = service.hub.links
    assert links is not None
    return links


async def until(condition: Any, wait: float = 5.0) -> None:
    async with asyncio.timeout(wait):
        while not condition():  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.01)


@asynccontextmanager
async def two_processes(secret: str = SECRET) -> AsyncIterator[Pair]:
    """Peer a on service A, peer b on service B, in one room; the link A -> B up."""
    config = SignalingConfig(
        heartbeat_seconds=30,
        rate_per_second=10_000,
        burst=10_000,
        broker_prefix=f"test:links:{secrets.token_hex(4)}:",
        link_secret=secret,
    )
    room = "links-" + secrets.token_hex(4)
    async with (
        serve(FakeGate(), config, REDIS_URL) as (base_a, service_a),
        serve(FakeGate(), config, REDIS_URL) as (base_b, service_b),
    ):
        a, welcome_a = await joined(base_a, "user:1", room=room)
        b, welcome_b = await joined(base_b, "user:2", room=room)
        await recv_type(a, "peer-joined")
        # The first frame across finds no link (it goes through Redis) and sets one up.
        await send(a, type="offer", to=welcome_b["peer_id"], sdp="v=first")
        assert (await recv_type(b, "offer"))["sdp"] == "v=first"
        await until(lambda: links_of(service_a).up(service_b.hub.node_id))
        try:
            yield a, b, welcome_a["peer_id"], welcome_b["peer_id"], service_a, service_b
        finally:
            await a.close()
            await b.close()


async def offers(ws: ClientConnection, count: int) -> list[str]:
    return [(await recv_type(ws, "offer"))["sdp"] for _ in range(count)]


async def test_a_frame_for_a_peer_on_another_process_goes_over_the_link() -> None:
    async with two_processes() as (a, b, a_id, b_id, service_a, service_b):
        before = links_of(service_a).sent, links_of(service_b).received
        for n in range(5):
            await send(a, type="offer", to=b_id, sdp=f"v={n}")
            offer = await recv_type(b, "offer")
            assert (offer["from"], offer["sdp"]) == (a_id, f"v={n}")
        assert links_of(service_a).sent == before[0] + 5
        assert links_of(service_b).received == before[1] + 5
        # And back, over B's own link to A (dialled on its first frame).
        await send(b, type="answer", to=a_id, sdp="v=back")
        assert (await recv_type(a, "answer"))["sdp"] == "v=back"
        await until(lambda: links_of(service_b).up(service_a.hub.node_id))
        await send(b, type="answer", to=a_id, sdp="v=back again")
        assert (await recv_type(a, "answer"))["sdp"] == "v=back again"
        assert links_of(service_b).sent >= 1 and links_of(service_a).received >= 1


@pytest.mark.parametrize("side", ["sender", "receiver"])
async def test_a_link_killed_mid_conversation_falls_back_losing_and_reordering_nothing(
    side: str,
) -> None:
    async with two_processes() as (a, b, _, b_id, service_a, service_b):
        links_a, links_b = links_of(service_a), links_of(service_b)
        node_b = service_b.hub.node_id

        def kill() -> None:
            if side == "sender":
                route = links_a._routes[node_b]
                assert route.conn is not None
                route.conn.drop()
            else:  # the receiving process drops it, with what it had not delivered
                for inbound in list(links_b._inbound.values()):
                    inbound.refuse("killed by the test")

        # A burst, with the link killed while frames are on it (no waiting for replies).
        for n in range(200):
            await send(a, type="offer", to=b_id, sdp=f"v={n}")
            if n == 100:
                await until(lambda: links_a.sent > 60)
                kill()
        assert await offers(b, 200) == [f"v={n}" for n in range(200)]
        # Once each, in order: a frame delivered twice would show in the next check.
        assert links_a.fallbacks == 1
        # It comes back by itself, and carries the frames again.
        await until(lambda: links_a.up(node_b))
        sent = links_a.sent
        for n in range(200, 210):
            await send(a, type="offer", to=b_id, sdp=f"v={n}")
        assert await offers(b, 10) == [f"v={n}" for n in range(200, 210)]
        assert links_a.sent == sent + 10


async def handshake(
    address: str, links: Links, node: str, *, forge: bool = False
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """Dial a link listener as process `node` would; (reader, writer, link id)."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    challenge = json.loads(await read_message(reader))
    mine = secrets.token_hex(16)
    proof = links.proof("dial", challenge["nonce"], mine, node, links.node_id)
    if forge:
        proof = secrets.token_hex(32)
    writer.write(message(json.dumps({"node": node, "nonce": mine, "proof": proof}).encode()))
    return reader, writer, challenge["nonce"]


def message(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


async def read_message(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        (size,) = struct.unpack("!I", await reader.readexactly(4))
        return await reader.readexactly(size)


def link_frame(room: str, to: str, text: str | bytes, seq: int = 1) -> bytes:
    """A frame's message on a link: its number, room, target and wire text."""
    data = text.encode() if isinstance(text, str) else text
    name, peer = room.encode(), to.encode()
    return message(struct.pack("!QHH", seq, len(name), len(peer)) + name + peer + data)


async def test_a_link_that_cannot_prove_the_secret_is_refused_and_delivers_nothing() -> None:
    async with two_processes() as (a, b, a_id, b_id, _, service_b):
        links_b = links_of(service_b)
        received = links_b.received
        # Another deployment's secret (or a guess): closed, nothing delivered.
        reader, writer, _ = await handshake(links_b.address, links_b, "n-intruder", forge=True)
        room = service_b.hub.local.get(b_id).room  # type: ignore[union-attr]
        forged = link_frame(room, b_id, p.RelayedOffer(from_=a_id, sdp="v=intruder").dump())
        writer.write(forged)
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the listener
        writer.close()
        # Frames before any handshake: closed too.
        host, _, port = links_b.address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        await read_message(reader)
        writer.write(forged)
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        await asyncio.sleep(0.1)
        assert links_b.received == received
        # The real link still works.
        await send(a, type="offer", to=b_id, sdp="v=ok")
        assert (await recv_type(b, "offer"))["sdp"] == "v=ok"
        assert links_b.received == received + 1


async def test_malformed_frames_on_a_link_are_dropped_and_the_receiver_goes_on() -> None:
    async with two_processes() as (a, b, a_id, b_id, service_a, service_b):
        links_b = links_of(service_b)
        node = "n-test-" + secrets.token_hex(3)
        reader, writer, link = await handshake(links_b.address, links_b, node)
        json.loads(await read_message(reader))  # the listener's proof: authenticated
        await service_a.hub.broker.publish(
            node_channel(service_b.hub.node_id), bus.encode(bus.LinkOpen(link=link, node=node))
        )
        room = service_b.hub.local.get(b_id).room  # type: ignore[union-attr]
        offer = p.RelayedOffer(from_=a_id, sdp="v=from the test link").dump()
        other_room = p.RelayedOffer(from_=a_id, sdp="v=for another room").dump()
        unread = p.RelayedOffer(from_=a_id, sdp="v=unreadable").dump()
        for bad in (
            link_frame(room, b_id, b"not a frame"),
            link_frame(room, b_id, b""),
            link_frame(room, b_id, unread, seq=0),  # not numbered
            link_frame(room, "", unread),
            link_frame("", b_id, unread),
            link_frame("another-room", b_id, other_room),  # b is not in that room
            link_frame(room, "nobody", unread),
            message(b"\xff\xff\x00"),  # shorter than the head
            message(struct.pack("!QHH", 1, 500, 0) + room.encode()),  # a room past the end
            link_frame(room, b_id, "{\u00e9}".encode("latin-1")),
        ):
            writer.write(bad)
        writer.write(link_frame(room, b_id, offer, seq=2))
        got = await recv_type(b, "offer")
        # The first frame to arrive is the good one: none of the others reached b.
        assert (got["from"], got["sdp"]) == (a_id, "v=from the test link")
        # A message past the size limit ends that link, not the process.
        writer.write(struct.pack("!I", 2**31))
        async with asyncio.timeout(5):
            assert await reader.read(1 << 16) == b"" or await reader.read() == b""
        writer.close()
        await send(a, type="offer", to=b_id, sdp="v=still fine")
        assert (await recv_type(b, "offer"))["sdp"] == "v=still fine"


async def test_a_process_whose_heartbeat_lapsed_loses_its_link_and_frames_go_by_redis() -> None:
    async with two_processes() as (a, b, _, b_id, service_a, service_b):
        links_a = links_of(service_a)
        node_b = service_b.hub.node_id
        # What the heartbeat check tells the links when B's heartbeat has lapsed.
        links_a.seen({}, [node_b])
        assert not links_a.up(node_b) and node_b not in links_a.nodes()
        sent = links_a.sent
        await send(a, type="offer", to=b_id, sdp="v=by redis")
        assert (await recv_type(b, "offer"))["sdp"] == "v=by redis"
        assert links_a.sent == sent
        # B beats again: the link comes back.
        links_a.seen({node_b: links_of(service_b).address}, [node_b])
        await until(lambda: links_a.up(node_b))
