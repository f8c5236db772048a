"""Call set-up time: two aiortc peers through Dari's signaling vs. a direct exchange.

    .venv/bin/python -m bench.signaling_callsetup [--runs 5]

Through Dari: from the first peer's join to both peer connections "connected"
(WebSocket, welcome, offer, trickled candidates, answer). Direct (baseline): the
same two aiortc peers handing each other their complete descriptions in one
process. Median of runs; the ratio counts.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.signaling_servers import start, stop, token_for
from signaling.rtcpeer import RtcPeer


async def through_dari(port: int, run: int) -> float:
    room = f"setup-{run}-{time.monotonic_ns()}"
    url = f"ws://127.0.0.1:{port}/ws/room"
    a = RtcPeer(url, room, token=token_for(1, room))
    b = RtcPeer(url, room, token=token_for(2, room))
    started = time.perf_counter()
    try:
        await a.join()
        await b.join()
        async with asyncio.timeout(30):
            await asyncio.gather(a.connected.wait(), b.connected.wait())
        return (time.perf_counter() - started) * 1000
    finally:
        await asyncio.gather(a.close(), b.close())


async def direct() -> float:
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    pcs: list[Any] = []
    tracks: list[Any] = []
    connected = [asyncio.Event(), asyncio.Event()]
    for index in range(2):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for track in (AudioStreamTrack(), VideoStreamTrack()):
            tracks.append(track)
            pc.addTrack(track)

        def watch(pc: Any = pc, event: asyncio.Event = connected[index]) -> None:
            async def on_state() -> None:
                if pc.connectionState == "connected":
                    event.set()

            pc.on("connectionstatechange", on_state)

        watch()
        pcs.append(pc)
    a, b = pcs
    started = time.perf_counter()
    try:
        async with asyncio.timeout(30):
            await a.setLocalDescription(await a.createOffer())
            await b.setRemoteDescription(a.localDescription)
            await b.setLocalDescription(await b.createAnswer())
            await a.setRemoteDescription(b.localDescription)
            await asyncio.gather(connected[0].wait(), connected[1].wait())
        return (time.perf_counter() - started) * 1000
    finally:
        for track in tracks:
            track.stop()
        for pc in pcs:
            await asyncio.wait_for(pc.close(), 5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    process, port = start("dari")
    results: dict[str, list[float]] = {"direct": [], "dari": []}
    try:
        for run in range(args.runs):
            results["direct"].append(asyncio.run(direct()))
            results["dari"].append(asyncio.run(through_dari(port, run)))
            print(
                f"run {run + 1}: direct {results['direct'][-1]:.0f} ms, "
                f"through Dari {results['dari'][-1]:.0f} ms"
            )
    finally:
        stop(process)
    medians = {kind: statistics.median(values) for kind, values in results.items()}
    print(
        f"median of {args.runs}: direct {medians['direct']:.0f} ms, "
        f"through Dari {medians['dari']:.0f} ms, ratio {medians['dari'] / medians['direct']:.2f}x"
    )


if __name__ == "__main__":
    main()
