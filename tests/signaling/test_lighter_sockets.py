"""What keeps a signaling socket light: no per-message compression, the socket lane past
the HTTP-only layers, and the transport handed to the app (signaling/serving.py)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.routing import WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from server.ops.middleware import route_template
from signaling.app import SocketLane
from signaling.connection import TRANSPORT_EXTENSION, WebSocketConnection
from signaling.gate import SignalingConfig
from signaling.serving import LANE_EXTENSION, uvicorn_options
from tests.signaling.client import OPEN, open_ws, recv_type, send
from tests.signaling.factories import make_call, session_cookie
from tests.signaling.fakes import FakeGate, serve


class _Recorder:
    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(dict(scope))


async def _receive() -> Message:
    return {"type": "websocket.connect"}


async def _send(message: Message) -> None:
    return None


async def test_the_lane_takes_signaling_sockets_and_nothing_else() -> None:
    rest, signaling = _Recorder(), _Recorder()
    lane = SocketLane(rest, signaling, prefix="/ws")
    for kind, path in [
        ("websocket", "/ws/room"),
        ("websocket", "/notes/ws/c_1"),  # another socket: the full stack
        ("http", "/ws/room"),  # not a socket
        ("websocket", "/wsx/room"),
    ]:
        scope = {"type": kind, "path": path, "root_path": ""}
        await lane(scope, _receive, _send)
    assert [s["path"] for s in signaling.scopes] == ["/ws/room"]
    assert [s["path"] for s in rest.scopes] == ["/notes/ws/c_1", "/ws/room", "/wsx/room"]
    # As the /ws mount would have set it: the route template stays "/ws/room".
    assert signaling.scopes[0]["root_path"] == "/ws"
    assert signaling.scopes[0]["app_root_path"] == ""


async def test_the_lane_hands_its_own_routes_to_their_endpoint_past_the_apps_stack() -> None:
    """A signaling route is called here, with the scope its mount and route would have
    made (observability still names it "/ws/room"); another path goes to the app."""
    rest, signaling = _Recorder(), _Recorder()
    called: list[WebSocket] = []

    async def endpoint(websocket: WebSocket) -> None:
        called.append(websocket)

    route = WebSocketRoute("/room", endpoint)
    lane = SocketLane(rest, signaling, prefix="/ws", routes=[route])
    for path in ("/ws/room", "/ws/nowhere", "/ws/room/more"):
        await lane({"type": "websocket", "path": path, "root_path": ""}, _receive, _send)
    [websocket] = called
    assert websocket.scope["route"] is route and websocket.scope["path_params"] == {}
    assert route_template(websocket.scope) == "/ws/room"
    assert [s["path"] for s in signaling.scopes] == ["/ws/nowhere", "/ws/room/more"]
    assert rest.scopes == []


def test_uvicorn_options_turn_compression_and_protocol_pings_off() -> None:
    assert uvicorn_options()["ws_per_message_deflate"] is False
    assert uvicorn_options()["ws_ping_interval"] is None  # the app's heartbeat serves


async def test_a_browser_offering_deflate_gets_no_compression_and_the_app_its_transport() -> None:
    async with serve(FakeGate(), SignalingConfig(heartbeat_seconds=30)) as (base, service):
        # Browsers always offer permessage-deflate; the client library does by default.
        ws = await connect(base + "/room", open_timeout=10)
        OPEN.append(ws)
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert ws.protocol.extensions == []
        await send(ws, type="join", room="r1", token="user:1")
        await recv_type(ws, "welcome")
        [peer] = service.hub.local.all()
        assert isinstance(peer.conn, WebSocketConnection)
        transport = peer.conn.websocket.scope["extensions"][TRANSPORT_EXTENSION]
        assert transport.get_write_buffer_size() == 0 and not transport.is_closing()
        # Past the handshake, its request and response are let go; no keep-alive ping
        # timer either.
        protocol = peer.conn.websocket.scope["extensions"][LANE_EXTENSION]
        assert protocol.lane is not None
        assert protocol.request is None and protocol.response is None
        assert protocol.ping_interval is None and protocol.ping_timer is None


async def test_the_real_app_serves_its_sockets_uncompressed_through_the_lane(
    live_server: str, db: Session
) -> None:
    call = make_call(db)
    ws = await open_ws(live_server, "/ws/user", cookie=session_cookie(db, call.gp))
    assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
    await send(ws, type="subscribe", after_id=0)
    await send(ws, type="ping", ts=1)
    assert (await recv_type(ws, "pong"))["ts"] == 1
