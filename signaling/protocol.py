"""The wire format, version 1: typed frames and one parser. No I/O here.

Every frame that enters or leaves the service is one of these models, so the
protocol has one definition (documented in docs/signaling.md).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

VERSION: Literal[1] = 1
MAX_FRAME_BYTES = 64 * 1024

PeerId = Annotated[str, Field(min_length=1, max_length=64)]
Sdp = Annotated[str, Field(min_length=1, max_length=60_000)]


class ProtocolError(ValueError):
    """A frame that cannot be accepted; `code` goes into the error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    v: Literal[1] = VERSION

    def dump(self) -> str:
        return self.model_dump_json(by_alias=True)


# --- client → server ------------------------------------------------------------------


class Join(Frame):
    type: Literal["join"] = "join"
    room: str = Field(min_length=1, max_length=64)
    token: str | None = Field(default=None, max_length=2000)
    resume_token: str | None = Field(default=None, max_length=200)
    # aiortc has no rollback and no restartIce: it must be the only offerer.
    can_rollback: bool = True


class IceCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(max_length=2000)
    sdpMid: str | None = Field(default=None, max_length=64)  # noqa: N815 (WebRTC's name)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=255)  # noqa: N815
    usernameFragment: str | None = Field(default=None, max_length=256)  # noqa: N815


class Offer(Frame):
    type: Literal["offer"] = "offer"
    to: PeerId | None = None  # absent only on /ws/echo
    sdp: Sdp
    # Only on /ws/echo, for clients without a session cookie (a join token).
    token: str | None = Field(default=None, max_length=2000)


class Answer(Frame):
    type: Literal["answer"] = "answer"
    to: PeerId | None = None
    sdp: Sdp


class Candidate(Frame):
    type: Literal["candidate"] = "candidate"
    to: PeerId
    candidate: IceCandidate


class EndOfCandidates(Frame):
    type: Literal["end-of-candidates"] = "end-of-candidates"
    to: PeerId


class IceRestartRequest(Frame):
    type: Literal["ice-restart"] = "ice-restart"
    to: PeerId


class Ping(Frame):
    type: Literal["ping"] = "ping"
    ts: float | None = None


class ChatSend(Frame):
    type: Literal["chat"] = "chat"
    text: str = Field(min_length=1, max_length=2000)


class Admit(Frame):
    type: Literal["admit"] = "admit"
    peer: PeerId


class Deny(Frame):
    type: Literal["deny"] = "deny"
    peer: PeerId


class Stats(Frame):
    """The client's quality summary so far (medians); the last one wins."""

    type: Literal["stats"] = "stats"
    bitrate_kbps: float = Field(ge=0, le=1_000_000)
    rtt_ms: float = Field(ge=0, le=600_000)
    loss_pct: float = Field(ge=0, le=100)


class Leave(Frame):
    type: Literal["leave"] = "leave"


class Subscribe(Frame):
    type: Literal["subscribe"] = "subscribe"
    # The floor the client last heard (it has everything at or below it), not the
    # newest id it has seen: a lower id may still commit.
    after_id: int = Field(default=0, ge=0)
    token: str | None = Field(default=None, max_length=2000)


ClientFrame = Annotated[
    Join
    | Offer
    | Answer
    | Candidate
    | EndOfCandidates
    | IceRestartRequest
    | Ping
    | ChatSend
    | Admit
    | Deny
    | Stats
    | Leave
    | Subscribe,
    Field(discriminator="type"),
]
_client_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
CLIENT_TYPES = frozenset(
    {
        "join",
        "offer",
        "answer",
        "candidate",
        "end-of-candidates",
        "ice-restart",
        "ping",
        "chat",
        "admit",
        "deny",
        "stats",
        "leave",
        "subscribe",
    }
)

# --- server → client ------------------------------------------------------------------

OfferRole = Literal["any", "you", "peer"]
LeaveReason = Literal["left", "timeout", "replaced", "gone", "denied"]


class PeerInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    peer_id: str
    name: str
    kind: Literal["user", "guest"]
    # Your role towards this peer (see "Who offers, who is polite").
    polite: bool
    offer: OfferRole
    # Reconnecting (its socket or its process went away; it may still resume).
    away: bool = False


class Welcome(Frame):
    type: Literal["welcome"] = "welcome"
    peer_id: str
    room: str
    resumed: bool
    polite: bool
    can_offer: bool
    peers: list[PeerInfo]
    ice_servers: list[dict[str, Any]]
    resume_token: str
    resume_seconds: int
    heartbeat_s: int
    max_peers: int


class Lobby(Frame):
    type: Literal["lobby"] = "lobby"


class Knock(Frame):
    type: Literal["knock"] = "knock"
    peer: PeerInfo


class PeerJoined(Frame):
    type: Literal["peer-joined"] = "peer-joined"
    peer: PeerInfo


class PeerLeft(Frame):
    type: Literal["peer-left"] = "peer-left"
    peer_id: str
    reason: LeaveReason = "left"


class PeerAway(Frame):
    """The peer's link to signaling dropped; it may resume (then `ice-restart` follows)
    until its resume window ends (then `peer-left`). Its media may well still flow."""

    type: Literal["peer-away"] = "peer-away"
    peer_id: str


class RelayedOffer(Frame):
    type: Literal["offer"] = "offer"
    from_: str | None = Field(default=None, alias="from")
    sdp: str


class RelayedAnswer(Frame):
    type: Literal["answer"] = "answer"
    from_: str | None = Field(default=None, alias="from")
    sdp: str


class RelayedCandidate(Frame):
    type: Literal["candidate"] = "candidate"
    from_: str = Field(alias="from")
    candidate: IceCandidate


class RelayedEndOfCandidates(Frame):
    type: Literal["end-of-candidates"] = "end-of-candidates"
    from_: str = Field(alias="from")


class IceRestart(Frame):
    type: Literal["ice-restart"] = "ice-restart"
    from_: str = Field(alias="from")
    reason: Literal["reconnected", "requested"]


class Pong(Frame):
    type: Literal["pong"] = "pong"
    ts: float | None = None


class ChatMessage(Frame):
    type: Literal["chat"] = "chat"
    from_: str = Field(alias="from")
    name: str
    text: str
    at: str


class NotificationFrame(Frame):
    type: Literal["notification"] = "notification"
    id: int
    kind: str
    payload: dict[str, Any]
    created_at: str
    read: bool = False
    # The client has every notification at or below this id (docs/signaling.md "User
    # channel"): it sends it back as `after_id` when it reconnects.
    floor: int | None = None


class ErrorFrame(Frame):
    type: Literal["error"] = "error"
    code: str
    message: str


ServerFrame = Annotated[
    Welcome
    | Lobby
    | Knock
    | PeerJoined
    | PeerLeft
    | PeerAway
    | RelayedOffer
    | RelayedAnswer
    | RelayedCandidate
    | RelayedEndOfCandidates
    | IceRestart
    | Pong
    | ChatMessage
    | NotificationFrame
    | ErrorFrame,
    Field(discriminator="type"),
]
_server_adapter: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)


def _load(text: str | bytes) -> dict[str, Any]:
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError("frame_too_large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("bad_frame", "not valid JSON") from None
    except RecursionError:
        # Thousands of nested brackets exhaust the parser's stack: an error frame,
        # not a traceback and a 1011 close.
        raise ProtocolError("bad_frame", "JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_frame", "a frame is a JSON object")
    version = data.get("v", VERSION)
    if version != VERSION:
        raise ProtocolError("unsupported_version", f"protocol version {VERSION} only")
    return data


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def parse_client(text: str | bytes) -> ClientFrame:
    """Validate one frame from a client; raises ProtocolError with a stable code.

    A good frame is parsed and validated in one pass (pydantic's JSON mode, no
    Python dict in between); a frame that fails it is parsed again step by step,
    for the same error code and message as ever.
    """
    if len(text) <= MAX_FRAME_BYTES:
        try:
            return _client_adapter.validate_json(text)
        except ValidationError:
            pass
    return parse_client_stepwise(text)


def parse_client_stepwise(text: str | bytes) -> ClientFrame:
    """`parse_client` one check at a time (JSON, object, version, type, fields): each
    failure with its own code and message."""
    data = _load(text)
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise ProtocolError("bad_frame", f"unknown frame type {str(kind)[:40]!r}")
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as error:
        raise ProtocolError("bad_frame", _explain(error)) from None


def parse_server(text: str | bytes) -> ServerFrame:
    """Validate one frame from the server (for clients and tests)."""
    data = _load(text)
    try:
        return _server_adapter.validate_python(data)
    except ValidationError as error:
        raise ProtocolError("bad_frame", _explain(error)) from None


def pair_roles(
    *, me_first: bool, me_can_rollback: bool, other_can_rollback: bool
) -> tuple[bool, OfferRole]:
    """My (polite, offer) towards one other peer; the other side gets the mirror image.

    Exactly one side of a pair is polite, so a glare is always resolved; a side
    that cannot roll back is never polite and, if the other side also cannot,
    the newcomer alone offers.
    """
    if me_can_rollback and other_can_rollback:
        return (not me_first), "any"
    if not me_can_rollback and other_can_rollback:
        return False, "you"
    if me_can_rollback and not other_can_rollback:
        return True, "peer"
    # Neither can roll back: the newcomer offers.
    return (me_first, "peer") if me_first else (False, "you")
