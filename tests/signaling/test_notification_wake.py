"""A commit's wake reaches every process's user channel over the broker: a notification
is delivered at once on another process, not at its next poll."""

from __future__ import annotations

import asyncio

import pytest

from signaling.gate import SignalingConfig
from tests.signaling.client import dial, recv, send
from tests.signaling.fakes import FakeGate, serve

REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.mark.redis
async def test_a_wake_on_one_process_delivers_on_another_at_once() -> None:
    gate = FakeGate()
    # Polling alone would take a minute: only the wake can deliver within the wait below.
    config = SignalingConfig(notification_poll_seconds=60)
    async with (
        serve(gate, config, REDIS_URL) as (_, writer),
        serve(gate, config, REDIS_URL) as (base, _),
    ):
        ws = await dial(f"{base}/user")
        await send(ws, type="subscribe", token="user:7")
        await asyncio.sleep(0.3)  # subscribed
        new_id = gate.add_notification(7, "consult.message")
        writer.wake_notifications()  # as the server does after the commit
        frame = await recv(ws, wait=2)
        assert frame["type"] == "notification" and frame["id"] == new_id
        assert frame["kind"] == "consult.message"


async def test_a_wake_delivers_any_kind_on_the_same_process_at_once() -> None:
    gate = FakeGate()
    async with serve(gate, SignalingConfig(notification_poll_seconds=60)) as (base, service):
        ws = await dial(f"{base}/user")
        await send(ws, type="subscribe", token="user:3")
        await asyncio.sleep(0.3)
        new_id = gate.add_notification(3, "appointment.booked")
        service.wake_notifications()
        frame = await recv(ws, wait=2)
        assert frame["id"] == new_id
