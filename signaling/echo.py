"""The pre-call echo peer: aiortc answers a browser's offer and sends its media back.

aiortc does not trickle: the browser sends a complete offer, the echo peer
answers with a complete description. Messages on a data channel come straight back:
the pre-call page measures round trip and loss with them. Each session costs encoder CPU, so only a
few run at once and each has a time limit (enforced by the endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from signaling.gate import SignalingConfig

log = logging.getLogger("dari.signaling.echo")

# Every wait on aiortc has a bound: a peer that cannot gather candidates hangs.
NEGOTIATION_TIMEOUT = 15.0


class EchoSession:
    def __init__(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.contrib.media import MediaRelay

        # No public STUN: clinic networks may be closed and gathering would stall.
        self.pc: Any = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.relay: Any = MediaRelay()

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            # Send back what we receive, through a relay so the track can be read once.
            # (The pre-call page offers its media send-only, so nothing goes back: it
            # measures the link with the probes below.)
            self.pc.addTrack(self.relay.subscribe(track))

        @self.pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            # The pre-call probes: each message goes straight back (round trip and loss).
            def on_message(message: Any) -> None:
                if channel.readyState == "open" and isinstance(message, str) and len(message) < 64:
                    channel.send(message)

            channel.on("message", on_message)

    async def answer(self, offer_sdp: str) -> str:
        from aiortc import RTCSessionDescription

        async def negotiate() -> str:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            sdp: str = self.pc.localDescription.sdp
            return sdp

        return await asyncio.wait_for(negotiate(), NEGOTIATION_TIMEOUT)

    async def close(self) -> None:
        # aiortc's close stops its transports; a socket already torn down raises
        # ConnectionError (an OSError), a stuck one our TimeoutError.
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(self.pc.close(), 5)


class EchoService:
    def __init__(self, config: SignalingConfig) -> None:
        self.config = config
        self.sessions: set[EchoSession] = set()

    def open(self) -> EchoSession | None:
        """A new session, or None when the limit is reached."""
        if len(self.sessions) >= self.config.echo_max_sessions:
            return None
        session = EchoSession()
        self.sessions.add(session)
        return session

    async def close(self, session: EchoSession) -> None:
        self.sessions.discard(session)
        await session.close()

    async def stop(self) -> None:
        for session in list(self.sessions):
            await self.close(session)
