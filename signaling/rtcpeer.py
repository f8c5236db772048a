"""A headless aiortc peer that speaks the signaling protocol (tests, benchmarks, probes).

aiortc gathers all its candidates before `setLocalDescription` returns and has no
rollback: this peer joins with `can_rollback: false`, so the server makes it the
only offerer of each pair with another aiortc peer, and it trickles anyway by
taking the candidates out of its description and sending them one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from signaling import protocol as p

# Every wait has a bound: a call that cannot gather candidates hangs, not fails.
STEP_TIMEOUT = 20.0


def split_candidates(sdp: str) -> tuple[str, list[p.IceCandidate]]:
    """The description without its candidates, and the candidates with their m-line."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    found: list[p.IceCandidate] = []
    index = -1
    mid: str | None = None
    for line in lines:
        if line.startswith("m="):
            index += 1
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        if line.startswith("a=candidate:"):
            found.append(
                p.IceCandidate(candidate=line[2:], sdpMid=mid, sdpMLineIndex=max(index, 0))
            )
            continue
        if line.startswith("a=end-of-candidates"):
            continue
        kept.append(line)
    # sdpMid is only known after the a=mid line; fill in for candidates listed before it.
    mids: dict[int, str] = {}
    index = -1
    for line in kept:
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=mid:"):
            mids[index] = line[len("a=mid:") :]
    for candidate in found:
        if candidate.sdpMid is None and candidate.sdpMLineIndex is not None:
            candidate.sdpMid = mids.get(candidate.sdpMLineIndex)
    return "\r\n".join(kept), found


@dataclass
class Received:
    video: int = 0
    audio: int = 0


@dataclass
class RtcPeer:
    """Join a room, negotiate with every other peer, count the media received."""

    ws_url: str
    room: str
    token: str | None = None
    cookie: str | None = None
    origin: str | None = None
    send_media: bool = True
    peer_id: str = ""
    welcome: dict[str, Any] = field(default_factory=dict)
    pcs: dict[str, Any] = field(default_factory=dict)
    received: Received = field(default_factory=Received)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    connected_at: float | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _ws: ClientConnection | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _pending: dict[str, list[p.IceCandidate | None]] = field(default_factory=dict)
    _tracks: list[Any] = field(default_factory=list)
    # My offer role towards each peer ("any", "you" or "peer"), from the server.
    roles: dict[str, str] = field(default_factory=dict)
    # Every connection ever made, so close() leaves no UDP socket behind.
    _all_pcs: list[Any] = field(default_factory=list)
    _closing: set[asyncio.Task[Any]] = field(default_factory=set)

    async def join(self, resume_token: str | None = None) -> dict[str, Any]:
        headers = {"Cookie": f"dari_session={self.cookie}"} if self.cookie else {}
        self._ws = await connect(
            self.ws_url,
            origin=self.origin,  # type: ignore[arg-type]
            additional_headers=headers,
            open_timeout=STEP_TIMEOUT,
        )
        await self._send(
            p.Join(room=self.room, token=self.token, resume_token=resume_token, can_rollback=False)
        )
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self._ws.recv(), STEP_TIMEOUT))
        if frame.get("type") != "welcome":
            raise RuntimeError(f"not welcomed: {frame}")
        self.welcome = frame
        self.peer_id = frame["peer_id"]
        self._spawn(self._read())
        for peer in frame["peers"]:
            self.roles[peer["peer_id"]] = peer["offer"]
            if peer["offer"] in {"you", "any"}:
                self._spawn(self._offer(peer["peer_id"]))
        return frame

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _retire(self, pc: Any) -> None:
        """Close a replaced connection in the background; close() waits for it.

        Never cancelled: an aiortc close interrupted half-way leaves its UDP sockets open.
        """
        task = asyncio.create_task(pc.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _send(self, frame: p.Frame) -> None:
        assert self._ws is not None
        await self._ws.send(frame.dump())

    def _new_pc(self, other: str) -> Any:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
        from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

        old = self.pcs.pop(other, None)
        if old is not None:
            self._retire(old)
        # max-bundle: one ICE transport for all media. With "balanced" aiortc
        # gathers a transport per m-line and never closes the ones bundled away.
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.pcs[other] = pc
        self._all_pcs.append(pc)
        if self.send_media:
            audio, video = AudioStreamTrack(), VideoStreamTrack()
            self._tracks += [audio, video]
            pc.addTrack(audio)
            pc.addTrack(video)

        @pc.on("track")
        def on_track(track: Any) -> None:
            self._spawn(self._consume(track))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState == "connected" and not self.connected.is_set():
                self.connected_at = time.monotonic()
                self.connected.set()

        return pc

    async def _consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        # The track ends (its peer connection closed or the sender stopped).
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if track.kind == "video":
                    self.received.video += 1
                else:
                    self.received.audio += 1

    async def _send_description(self, other: str, pc: Any, kind: str) -> None:
        sdp, candidates = split_candidates(pc.localDescription.sdp)
        frame: p.Frame = (
            p.Offer(to=other, sdp=sdp) if kind == "offer" else p.Answer(to=other, sdp=sdp)
        )
        await self._send(frame)
        for candidate in candidates:
            await self._send(p.Candidate(to=other, candidate=candidate))
        await self._send(p.EndOfCandidates(to=other))

    async def _offer(self, other: str) -> None:
        pc = self._new_pc(other)
        await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), STEP_TIMEOUT)
        await self._send_description(other, pc, "offer")

    async def _remote(self, other: str, sdp: str, kind: str) -> None:
        from aiortc import RTCSessionDescription

        if kind == "offer":
            pc = self._new_pc(other)
        else:
            pc = self.pcs[other]
        await asyncio.wait_for(
            pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind)), STEP_TIMEOUT
        )
        for candidate in self._pending.pop(other, []):
            await self._add_candidate(pc, candidate)
        if kind == "offer":
            await asyncio.wait_for(pc.setLocalDescription(await pc.createAnswer()), STEP_TIMEOUT)
            await self._send_description(other, pc, "answer")

    @staticmethod
    async def _add_candidate(pc: Any, candidate: p.IceCandidate | None) -> None:
        from aiortc.sdp import candidate_from_sdp

        if candidate is None:
            await pc.addIceCandidate(None)
            return
        parsed = candidate_from_sdp(candidate.candidate.removeprefix("candidate:"))
        parsed.sdpMid = candidate.sdpMid
        parsed.sdpMLineIndex = candidate.sdpMLineIndex
        await pc.addIceCandidate(parsed)

    async def _candidate(self, other: str, candidate: p.IceCandidate | None) -> None:
        pc = self.pcs.get(other)
        if pc is None or pc.remoteDescription is None:
            self._pending.setdefault(other, []).append(candidate)
            return
        await self._add_candidate(pc, candidate)

    async def _read(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(ConnectionClosed):
            await self._read_frames(self._ws)

    async def _read_frames(self, ws: ClientConnection) -> None:
        async for text in ws:
            frame = json.loads(text)
            self.events.append(frame)
            kind = frame["type"]
            sender = frame.get("from", "")
            if kind in {"offer", "answer"}:
                # In order: candidates that follow must meet the new connection.
                await self._remote(sender, frame["sdp"], kind)
            elif kind == "candidate":
                await self._candidate(sender, p.IceCandidate(**frame["candidate"]))
            elif kind == "end-of-candidates":
                await self._candidate(sender, None)
            elif kind == "peer-joined":
                self.roles[frame["peer"]["peer_id"]] = frame["peer"]["offer"]
            elif kind == "ice-restart" and self.roles.get(sender) in {"you", "any"}:
                # No restartIce in aiortc: a fresh peer connection, offered by us.
                # (If the other side is the offerer, its fresh offer will come.)
                await self._offer(sender)
            elif kind == "peer-left":
                pc = self.pcs.pop(frame["peer_id"], None)
                if pc is not None:
                    self._retire(pc)

    async def wait_media(self, frames: int = 5, limit: float = STEP_TIMEOUT) -> None:
        """Until connected and at least `frames` video and audio frames have arrived."""
        try:
            async with asyncio.timeout(limit):
                await self.connected.wait()
                while self.received.video < frames or self.received.audio < frames:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        except TimeoutError:
            states = {
                other: (pc.signalingState, pc.iceConnectionState, pc.connectionState)
                for other, pc in self.pcs.items()
            }
            raise TimeoutError(
                f"{self.peer_id}: pcs {states}, received {self.received}, "
                f"events {[e['type'] for e in self.events]}"
            ) from None

    async def drop(self) -> None:
        """Lose the signaling link without a leave (a network change)."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):  # the server may have closed first
                await self._send(p.Leave())
            with contextlib.suppress(TimeoutError):  # close() itself swallows ConnectionClosed
                await asyncio.wait_for(self._ws.close(), 5)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=5)
        for pc in self._all_pcs:
            # As in echo.py: a torn-down transport raises ConnectionError (OSError).
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(pc.close(), 5)
        self._all_pcs.clear()
        self.pcs.clear()
        for track in self._tracks:
            track.stop()
