"""Signaling tests close every WebSocket they opened before their event loop ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.signaling.client import close_all


@pytest.fixture(autouse=True)
async def _close_sockets() -> AsyncIterator[None]:
    yield
    await close_all()
