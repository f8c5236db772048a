"""A background loop stops when cancelled, even when the cancellation reached its step
as a broker error (redis-py can turn one into a connection error as it tears the
connection down): before, the loop's guard swallowed it, the loop ran on, and the
process's shutdown waited for it for ever (tests/signaling/test_service.py hung so)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from signaling.gate import SignalingConfig
from signaling.peers import LocalPeers
from signaling.presence import Presence


class _TearingBroker:
    """A broker whose call, when cancelled, fails as redis-py's can: a RedisError."""

    errors = (RedisConnectionError, OSError)

    def __init__(self) -> None:
        self.calls = 0

    async def node_beat(self, *_: Any) -> None:
        self.calls += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection closed by server.") from None


async def _nothing(*_: Any) -> None:
    return None


async def test_a_heartbeat_loop_cancelled_mid_call_stops_though_the_call_failed_otherwise() -> None:
    broker = _TearingBroker()
    config = SignalingConfig(node_beat_seconds=0.01)
    presence = Presence(broker, config, LocalPeers(), _nothing, node_id="n-test")  # type: ignore[arg-type]
    task = asyncio.create_task(presence.heartbeat_loop())
    while broker.calls == 0:  # noqa: ASYNC110 (waiting for the loop's first call)
        await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()
    assert broker.calls == 1  # no second beat after the cancellation
