"""The room channel: bus messages to every process serving a room, fanned out to the peers here.

Every process serving a room, the publishing one included, receives each message
from the broker and delivers it to its own peers; a frame for one peer on this
process skips the broker. Messages that act on a peer's state rather than carry
a frame (replaced, adopted, admitted, denied) go to the hub's `on_control`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from signaling import bus
from signaling import protocol as p
from signaling.broker import Broker
from signaling.peers import LocalPeer, LocalPeers, peer_info
from signaling.presence import Presence

log = logging.getLogger("dari.signaling.relay")

Control = bus.Replaced | bus.Adopted | bus.Admitted | bus.Denied
ControlHandler = Callable[[str, Control], Awaitable[None]]


def _channel(room: str) -> str:
    return f"room:{room}"


class RoomChannel:
    def __init__(
        self,
        broker: Broker,
        local: LocalPeers,
        presence: Presence,
        node_id: str,
        on_control: ControlHandler,
    ) -> None:
        self.broker = broker
        self.local = local
        self.presence = presence
        self.node_id = node_id
        self.on_control = on_control

    # --- the broker edge ----------------------------------------------------------------

    async def publish(self, room: str, message: bus.Message) -> None:
        """To every process serving the room, this one included."""
        stamped = message.model_copy(update={"node": self.node_id})
        await self.broker.publish(_channel(room), bus.encode(stamped))

    async def open(self, room: str) -> None:
        """Start receiving the room's messages (its first peer here has arrived)."""

        async def receive(text: str) -> None:
            await self._receive(room, text)

        await self.broker.subscribe(_channel(room), receive)

    async def close(self, room: str) -> None:
        """Stop receiving the room's messages (its last peer here has gone)."""
        try:
            await self.broker.unsubscribe(_channel(room))
        except self.broker.errors:
            # The broker is gone; so is the subscription, or it ends with the
            # reconnection. Nobody here is left to receive it either way.
            log.warning("room %s: unsubscribe failed: broker unreachable", room)

    async def _receive(self, room: str, text: str) -> None:
        try:
            message = bus.decode(text)
        except ValidationError as error:
            # Another release or a stray publisher: drop it, keep reading.
            log.warning("room %s: dropped an unreadable message (%s)", room, bus.explain(error))
            return
        await self._deliver(room, message)

    # --- relaying ---------------------------------------------------------------------

    async def relay(self, sender: LocalPeer, to: str, frame: bus.RelayedFrame) -> None:
        """A negotiation frame from one admitted peer to another of the same room."""
        target = self.local.get(to)
        if target is not None:
            # Fast path: the peer is on this process; the room must still match.
            if target.room != sender.room or not target.admitted:
                await sender.error("unknown_peer", "no such peer in this room")
            else:
                await target.send(frame)
            return
        record = (await self.presence.live(sender.room)).get(to)
        if record is None or not record.admitted:
            await sender.error("unknown_peer", "no such peer in this room")
            return
        await self.publish(sender.room, bus.ToPeer(to=to, frame=frame))

    def _admitted(self, room: str, *, besides: str | None = None) -> list[LocalPeer]:
        """This process's admitted peers of the room (guests in the lobby hear nothing),
        less the one the message is about."""
        return [
            peer for peer in self.local.in_room(room) if peer.admitted and peer.peer_id != besides
        ]

    async def _deliver(self, room: str, message: bus.Message) -> None:
        """Fan one message out to this process's peers of the room."""
        match message:
            case bus.ToPeer(to=to, frame=frame):
                target = self.local.get(to)
                if target is not None and target.room == room:
                    await target.send(frame)
            case bus.Chat(frame=frame):
                for peer in self._admitted(room):
                    await peer.send(frame)
            case bus.Joined(record=record):
                for peer in self._admitted(room, besides=record.peer_id):
                    await peer.send(p.PeerJoined(peer=peer_info(peer.record(), record)))
            case bus.Knocked(record=record):
                for peer in self._admitted(room):
                    if peer.identity.kind == "user":
                        await peer.send(p.Knock(peer=peer_info(peer.record(), record)))
            case bus.Left(peer_id=peer_id, reason=reason):
                for peer in self._admitted(room, besides=peer_id):
                    await peer.send(p.PeerLeft(peer_id=peer_id, reason=reason))
            case bus.Away(peer_id=peer_id):
                for peer in self._admitted(room, besides=peer_id):
                    await peer.send(p.PeerAway(peer_id=peer_id))
            case bus.Reconnected(from_=sender):
                for peer in self._admitted(room, besides=sender):
                    await peer.send(p.IceRestart(from_=sender, reason="reconnected"))
            case bus.Replaced() | bus.Adopted() | bus.Admitted() | bus.Denied():
                await self.on_control(room, message)
