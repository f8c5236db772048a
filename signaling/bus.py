"""What processes tell each other through the broker: typed room messages and presence records.

A message is serialized at the broker edge (`encode`) and parsed on receipt
(`decode`, which raises `pydantic.ValidationError` for anything unknown or
malformed: the receiver logs and drops it). The JSON is the one the room channel
has always carried (`k` names the kind, relayed frames travel as the text the
browser receives), so two releases can share a broker during a rolling restart;
a field a newer release adds is ignored by an older one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
)

from signaling import protocol as p


class PeerRecord(BaseModel):
    """A peer's presence entry, read by every process serving its room."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    peer_id: str
    key: str  # stable per person (Identity.key): a second tab replaces the first
    name: str
    kind: Literal["user", "guest"]
    can_rollback: bool
    seq: int  # join order in the room: decides who is polite
    admitted: bool  # False while a guest waits in the lobby
    resume: str = ""  # hash of the peer's current resume token
    # The process holding the peer (its heartbeat tells whether it is alive), and
    # whether the peer is away: its socket dropped or its process died, and its
    # resume window runs until the entry's expiry. Older releases omit both.
    node: str = ""
    away: bool = False


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    node: str = ""  # the publishing process (set by the room channel)


RelayedFrame = Annotated[
    p.RelayedOffer | p.RelayedAnswer | p.RelayedCandidate | p.RelayedEndOfCandidates | p.IceRestart,
    Field(discriminator="type"),
]
_relayed: TypeAdapter[RelayedFrame] = TypeAdapter(RelayedFrame)


def _relayed_text(value: Any) -> Any:
    """A relayed frame travels as the text the browser will receive; it is validated in
    one pass from that text (no Python dict in between)."""
    return _relayed.validate_json(value) if isinstance(value, str | bytes) else value


def _chat_text(value: Any) -> Any:
    return p.ChatMessage.model_validate_json(value) if isinstance(value, str | bytes) else value


class ToPeer(_Message):
    """A negotiation frame for one peer; the process holding that peer delivers it."""

    k: Literal["to"] = "to"
    to: str
    frame: RelayedFrame
    # Set by a process that has sent frames to the target's process over a direct link
    # (signaling/links.py): counts its frames to that process, so the receiver
    # delivers each once and in order when some are sent again through Redis after
    # the link broke. 0: not counted (sent through Redis only).
    seq: int = 0

    _parse_frame = field_validator("frame", mode="before")(_relayed_text)

    @field_serializer("frame")
    def _dump_frame(self, frame: p.Frame) -> str:
        return frame.dump()


class Chat(_Message):
    """An in-call chat message for every admitted peer of the room."""

    k: Literal["all"] = "all"
    frame: p.ChatMessage

    _parse_frame = field_validator("frame", mode="before")(_chat_text)

    @field_serializer("frame")
    def _dump_frame(self, frame: p.Frame) -> str:
        return frame.dump()


class Joined(_Message):
    """A peer was admitted (joined, or let in from the lobby)."""

    k: Literal["joined"] = "joined"
    record: PeerRecord


class Knocked(_Message):
    """A guest waits in the lobby; participants may admit or deny it."""

    k: Literal["knock"] = "knock"
    record: PeerRecord


class Left(_Message):
    """A peer is gone; sent once, by whoever removed its presence entry."""

    k: Literal["left"] = "left"
    peer_id: str
    reason: p.LeaveReason
    lobby: bool = False  # it was still waiting in the lobby


class Away(_Message):
    """A peer's socket dropped or its process died: it may resume until its window ends."""

    k: Literal["away"] = "away"
    peer_id: str


class Reconnected(_Message):
    """A peer came back on a new socket: the others restart ICE with it."""

    k: Literal["restart"] = "restart"
    from_: str = Field(alias="from")
    except_: str = Field(alias="except")


class Replaced(_Message):
    """A second tab of the same person replaced this peer: close its socket."""

    k: Literal["close"] = "close"
    to: str
    code: int


class Adopted(_Message):
    """A peer resumed through another process: the one that held it lets go."""

    k: Literal["adopted"] = "adopted"
    peer_id: str


class Admitted(_Message):
    """A participant let a guest in; the process holding the guest welcomes it."""

    k: Literal["admit"] = "admit"
    peer_id: str


class Denied(_Message):
    """A participant turned a guest away; the process holding the guest closes it."""

    k: Literal["deny"] = "deny"
    peer_id: str


class SessionEnded(_Message):
    """A login session ended (logout, revoke, password change) or, with `session` None,
    all of a user's sessions (deactivation): every process closes their sockets.
    Published on SESSIONS_CHANNEL, not on a room's channel."""

    k: Literal["session_ended"] = "session_ended"
    user_id: int
    session: str | None = None


SESSIONS_CHANNEL = "sessions"


def room_channel(room: str) -> str:
    """The broker channel of a room's messages."""
    return f"room:{room}"


class LinkOpen(_Message):
    """A direct link from `node` to the receiving process is up; published on that
    process's own channel (`links.node_channel`) after every frame `node` sent it
    through Redis before, so the receiver knows when the link's frames may go."""

    k: Literal["link"] = "link"
    link: str


Message = Annotated[
    ToPeer
    | Chat
    | Joined
    | Knocked
    | Left
    | Away
    | Reconnected
    | Replaced
    | Adopted
    | Admitted
    | Denied
    | SessionEnded
    | LinkOpen,
    Field(discriminator="k"),
]
_adapter: TypeAdapter[Message] = TypeAdapter(Message)


def encode(message: Message) -> str:
    """The text published on the broker."""
    return message.model_dump_json(by_alias=True)


def decode(text: str | bytes) -> Message:
    """One received message; raises pydantic.ValidationError if unknown or malformed."""
    return _adapter.validate_json(text)


def explain(error: ValidationError) -> str:
    """Where and how a message failed to parse, without any of its content (for logs)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '-'}: {item['type']}"
        for item in error.errors(include_input=False, include_url=False)
    )
