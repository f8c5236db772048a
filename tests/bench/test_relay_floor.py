"""The relay bench's floor case: the bare relay split in two processes, joined by a plain
TCP connection, carries frames both ways between a client on each."""

from __future__ import annotations

import json

from bench.signaling_relay import bare_pair
from bench.signaling_servers import free_port, start, stop


async def test_the_split_bare_relay_carries_frames_both_ways() -> None:
    link = free_port()
    first, port_a = start("bare", "--no-deflate", "--link", f"listen:{link}")
    try:
        second, port_b = start("bare", "--no-deflate", "--link", f"dial:{link}")
        try:
            a, b, _, _ = await bare_pair(port_a, port_b, "floor")
            await a.send(json.dumps({"type": "offer", "n": 1}))
            assert json.loads(await b.recv()) == {"type": "offer", "n": 1}
            await b.send(json.dumps({"type": "answer", "n": 1}))
            assert json.loads(await a.recv()) == {"type": "answer", "n": 1}
            await a.close()
            await b.close()
        finally:
            stop(second)
    finally:
        stop(first)
