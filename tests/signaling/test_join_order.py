"""A peer's welcome comes before anything else of its room, across processes.

Two services share Redis as two processes would. While B is joining on one (its
entry written and the room subscribed, its welcome not yet sent), A joins on the
other: A's `peer-joined` reaches B's process first. It used to go straight to B,
before B's welcome (the soak's clients saw it, and a page does not know its own id
yet then); it is now held and sent right after the welcome, unless the welcome
already lists A.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest

from signaling.gate import Identity, SignalingConfig
from tests.signaling.client import dial, recv_type, send
from tests.signaling.fakes import FakeGate, serve
from tests.signaling.test_service import joined

REDIS_URL = "redis://127.0.0.1:6379/5"
pytestmark = pytest.mark.redis


class SlowWelcomeGate(FakeGate):
    """Holds user 2's welcome (its ICE servers) until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()

    async def ice_servers(self, identity: Identity) -> list[dict[str, Any]]:
        if identity.key == "user:2":
            self.waiting.set()
            await self.release.wait()
        return []


async def test_a_peer_announced_while_joining_comes_after_the_welcome() -> None:
    config = SignalingConfig(broker_prefix=f"test:join:{secrets.token_hex(4)}:")
    room = "join-" + secrets.token_hex(4)
    slow = SlowWelcomeGate()
    async with (
        serve(FakeGate(), config, REDIS_URL) as (base_a, _),
        serve(slow, config, REDIS_URL) as (base_b, _),
    ):
        b = await dial(base_b + "/room", open_timeout=5)
        await send(b, type="join", room=room, token="user:2")
        async with asyncio.timeout(5):
            await slow.waiting.wait()  # B is subscribed; its welcome is not out
        a, welcome_a = await joined(base_a, "user:1", room=room)
        await asyncio.sleep(0.3)  # A's announcement reaches B's process meanwhile
        slow.release.set()
        first = json.loads(await asyncio.wait_for(b.recv(), 5))
        assert first["type"] == "welcome"
        listed = {peer["peer_id"] for peer in first["peers"]}
        assert welcome_a["peer_id"] not in listed  # A came after B's presence read
        second = await recv_type(b, "peer-joined")
        assert second["peer"]["peer_id"] == welcome_a["peer_id"]
        await a.close()
        await b.close()
