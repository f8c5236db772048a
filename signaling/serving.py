"""How uvicorn serves the signaling sockets: the options every entry point shares.

`dari serve`, `dari signaling`, the benchmarks and the live tests all run uvicorn
with `uvicorn_options()`, so what is measured and tested is what runs.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from signaling.connection import TRANSPORT_EXTENSION


class SignalingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default (`ws="auto"` with websockets installed) sans-I/O protocol, which
    also hands the app its transport (scope extension `dari.transport`): the only way to
    cut off a client that stopped reading, whose close frame can never be written
    (signaling/connection.py)."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # absent when the handshake was refused
            scope["extensions"][TRANSPORT_EXTENSION] = self.transport


def uvicorn_options() -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` / `uvicorn.Config`.

    No per-message compression: signaling frames are small JSON, and each deflate
    context costs tens of KiB per connection (zlib state for both directions).
    """
    return {"ws": SignalingWebSocketProtocol, "ws_per_message_deflate": False}
