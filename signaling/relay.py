"""The room channel: bus messages to every process serving a room, fanned out to the peers here.

Every process serving a room, the publishing one included, receives each message
from the broker and delivers it to its own peers; a frame for one peer on this
process skips the broker. Messages that act on a peer's state rather than carry
a frame (replaced, adopted, admitted, denied) go to the hub's `on_control`.

A frame for a peer on another process needs to know that the peer is an admitted
member of the room (else the sender gets `unknown_peer`), and which process holds
it. Reading presence for every frame would cost a broker round trip each, so the
admitted members found by one read (with their processes) are remembered for
`MEMBERS_FRESH_SECONDS`, and forgotten at once when the room channel says one left,
was replaced or denied. Only a hit skips the read: a miss (a newcomer, a guest)
always reads presence. The frame then goes over the direct link to that process
when one is up (signaling/links.py), else through the room's channel. Whatever
the sender believed, the process holding the target delivers only to an admitted
peer of that room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from signaling import bus
from signaling import protocol as p
from signaling.broker import Broker
from signaling.links import Links
from signaling.peers import LocalPeer, LocalPeers, peer_info
from signaling.presence import Presence

log = logging.getLogger("dari.signaling.relay")

Control = bus.Replaced | bus.Adopted | bus.Admitted | bus.Denied
ControlHandler = Callable[[str, Control], Awaitable[None]]


# How long a presence read vouches for a remote target (a dead process's peer is
# found by the next read after that, as by presence's own sweep).
MEMBERS_FRESH_SECONDS = 1.0


_channel = bus.room_channel


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
        # Set by the hub when this process has direct links to the others.
        self.links: Links | None = None
        # room -> (admitted peer id -> its process, from the last presence read, read
        # at monotonic time)
        self._members: dict[str, tuple[dict[str, str], float]] = {}

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
        self._members.pop(room, None)
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
        if type(message) is bus.ToPeer and message.seq and self.links is not None:
            if not self.links.fresh(message.node, message.seq):
                return  # sent again after its link broke, and delivered already
        await self._deliver(room, message)

    async def deliver_linked(self, room: str, to: str, text: str) -> None:
        """A frame that came over a direct link, as its wire text: the same rules as a
        `bus.ToPeer` from the channel."""
        target = self._target(room, to)
        if target is not None:
            await target.send_dumped(text)

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
        node = await self._member_node(sender.room, to)
        if node is None:
            await sender.error("unknown_peer", "no such peer in this room")
            return
        links = self.links
        if links is not None and links.send(node, sender.room, to, frame):
            return
        await self.broker.publish(
            _channel(sender.room), bus.encode(bus.ToPeer(to=to, frame=frame, node=self.node_id))
        )

    async def _member_node(self, room: str, peer_id: str) -> str | None:
        """The process holding `peer_id` ("" if its entry names none) if it is an admitted
        peer of the room (on any process), else None."""
        now = time.monotonic()
        known = self._members.get(room)
        if known is not None and now - known[1] < MEMBERS_FRESH_SECONDS:
            node = known[0].get(peer_id)
            if node is not None:
                return node
        live = await self.presence.live(room)
        if self.local.serves(room):  # not closed while we read
            members = {pid: record.node for pid, record in live.items() if record.admitted}
            self._members[room] = (members, now)
        record = live.get(peer_id)
        return record.node if record is not None and record.admitted else None

    def _forget_member(self, room: str, peer_id: str) -> None:
        known = self._members.get(room)
        if known is not None:
            known[0].pop(peer_id, None)

    def _target(self, room: str, peer_id: str) -> LocalPeer | None:
        """The peer a frame for one peer of the room goes to: held here, of that room,
        admitted (whatever the sending process believed)."""
        target = self.local.get(peer_id)
        if target is not None and target.room == room and target.admitted:
            return target
        return None

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
                target = self._target(room, to)
                if target is not None:
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
                self._forget_member(room, peer_id)
                for peer in self._admitted(room, besides=peer_id):
                    await peer.send(p.PeerLeft(peer_id=peer_id, reason=reason))
            case bus.Away(peer_id=peer_id):
                for peer in self._admitted(room, besides=peer_id):
                    await peer.send(p.PeerAway(peer_id=peer_id))
            case bus.Reconnected(from_=sender):
                for peer in self._admitted(room, besides=sender):
                    await peer.send(p.IceRestart(from_=sender, reason="reconnected"))
            case bus.Replaced(to=peer_id) | bus.Denied(peer_id=peer_id):
                self._forget_member(room, peer_id)
                await self.on_control(room, message)
            case bus.Adopted() | bus.Admitted():
                await self.on_control(room, message)
