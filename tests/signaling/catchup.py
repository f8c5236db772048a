"""A model outbox that commits out of id order, the real `UserChannel` over it, and a
page that follows the inbox's catch-up rule: the scenarios of the property tests.

`catch_up` mirrors `catchUp` in web/static/inbox.js; the browser test replays every
page's trace through the JS function and expects the same answers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from signaling.gate import SignalingConfig
from signaling.users import Prefetch, Subscription, UserChannel
from tests.signaling.fakes import FakeGate

WINDOW = 30.0  # the channel's re-read window (model seconds)
COMMIT_WITHIN = 20.0  # the bound on a transaction that wrote a notification
PAGE_USER = 1


def catch_up(state: dict[str, Any], frame: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """inbox.js `catchUp`, in Python."""
    fresh = frame["id"] > state["floor"] and frame["id"] not in state["seen"]
    floor = state["floor"]
    if isinstance(frame.get("floor"), int) and frame["floor"] > floor:
        floor = frame["floor"]
    seen = [*state["seen"], frame["id"]] if fresh else list(state["seen"])
    return {"floor": floor, "seen": [i for i in seen if i > floor]}, fresh


@dataclass
class Row:
    id: int
    user_id: int
    created_at: float
    state: str = "pending"  # committed, rolled back


@dataclass
class ModelGate(FakeGate):
    """An outbox whose ids are taken at insert and visible at commit (PostgreSQL's way)."""

    now: float = 1000.0
    rows: list[Row] = field(default_factory=list)

    def insert(self, user_id: int) -> Row:
        row = Row(len(self.rows) + 1, user_id, self.now)
        self.rows.append(row)
        return row

    def _dict(self, row: Row) -> dict[str, Any]:
        return {"id": row.id, "kind": "urgent.ring", "payload": {}, "created_at": "2026-11-30"}

    async def notifications_since(self, user_id: int, after_id: int) -> list[dict[str, Any]]:
        await asyncio.sleep(0)  # a read takes a while: others run meanwhile
        return [
            self._dict(r)
            for r in self.rows
            if r.user_id == user_id and r.id > after_id and r.state == "committed"
        ][:500]

    async def notifications_window(
        self, floor: int, user_ids: list[int], settled_before: float
    ) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        await asyncio.sleep(0)
        settled = max((r.id for r in self.rows if r.created_at < settled_before), default=0)
        await asyncio.sleep(0)
        rows = [
            (r.user_id, self._dict(r))
            for r in self.rows
            if r.user_id in user_ids and r.id > floor and r.state == "committed"
        ]
        return settled, rows


@dataclass
class Net:
    """One connection's frames on the wire: lost if the connection drops first."""

    frames: list[str] = field(default_factory=list)

    async def send_text(self, data: str) -> None:
        self.frames.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        return None


@dataclass
class Page:
    state: dict[str, Any] = field(default_factory=lambda: {"floor": 0, "seen": []})
    handled: list[int] = field(default_factory=list)
    # What the page did, for the JS replay: ("frame", frame, fresh) or ("hello", after_id).
    trace: list[list[Any]] = field(default_factory=list)

    def receive(self, text: str) -> None:
        frame = json.loads(text)
        self.state, fresh = catch_up(self.state, frame)
        self.trace.append(["frame", frame, fresh])
        if fresh:
            self.handled.append(frame["id"])

    def hello(self) -> int:
        after_id: int = self.state["floor"]
        self.trace.append(["hello", after_id])
        return after_id


OPS = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from([PAGE_USER, PAGE_USER, 2])),
    st.tuples(st.just("commit"), st.integers(0, 5)),
    st.tuples(st.just("rollback"), st.integers(0, 5)),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 5.0, 15.0, 40.0])),
    st.tuples(st.just("poll"), st.just(0)),
    st.tuples(st.just("deliver"), st.integers(1, 4)),
    st.tuples(st.just("drop"), st.just(0)),
    st.tuples(st.just("reconnect"), st.just(0)),
    st.tuples(st.just("reconnect_during_poll"), st.just(0)),
    # The server's connect: the catch-up read with the session, before `subscribe`.
    st.tuples(st.just("prefetch"), st.just(0)),
)
SCRIPTS = st.lists(OPS, min_size=20, max_size=80)


async def run_script(script: list[tuple[str, int]]) -> tuple[ModelGate, Page]:
    """Play one interleaving of commits, polls, arrivals and reconnects to the end."""
    gate = ModelGate()
    config = SignalingConfig(notification_window_seconds=WINDOW)
    channel = UserChannel(gate, config, clock=lambda: gate.now)
    page = Page()
    net: Net | None = None
    subscription: Subscription | None = None
    # A catch-up read ahead of the next connect (as gatekeeper.authenticate_subscriber),
    # with the page's after_id it was read for; other ops may run before the connect.
    early: tuple[int, Prefetch] | None = None

    async def connect() -> None:
        nonlocal net, subscription, early
        net = Net()
        after_id = page.hello()
        prefetch = early[1] if early is not None and early[0] == after_id else None
        early = None
        subscription = await channel.subscribe(PAGE_USER, net, after_id, prefetch)

    async def prefetch() -> None:
        nonlocal early
        after_id = page.state["floor"]
        mark = channel.mark()
        rows = await gate.notifications_since(PAGE_USER, after_id)
        early = (after_id, Prefetch(mark, rows))

    def pending() -> list[Row]:
        return [r for r in gate.rows if r.state == "pending"]

    def settle_overdue() -> None:
        # The bound (server/notifications/service.py): too late to commit is rolled back.
        for row in pending():
            if gate.now - row.created_at > COMMIT_WITHIN:
                row.state = "rolled back"

    await connect()
    for op, arg in script:
        if op == "insert":
            gate.insert(arg)
        elif op in ("commit", "rollback") and pending():
            rows = pending()
            rows[arg % len(rows)].state = "committed" if op == "commit" else "rolled back"
        elif op == "tick":
            gate.now += arg
            settle_overdue()
        elif op == "poll":
            await channel.poll_once()
        elif op == "deliver" and net is not None:
            for text in net.frames[:arg]:
                page.receive(text)
            del net.frames[:arg]
        elif op == "drop" and net is not None and subscription is not None:
            channel.unsubscribe(subscription)
            net = subscription = None  # what was on the wire is lost
        elif op == "reconnect" and net is None:
            await connect()
        elif op == "reconnect_during_poll" and net is None:
            await asyncio.gather(channel.poll_once(), connect())
        elif op == "prefetch" and net is None:
            await asyncio.gather(channel.poll_once(), prefetch())
    # The end: everything commits or not, the page is connected, every frame arrives.
    for row in pending():
        row.state = "committed"
    if net is None:
        await connect()
    await channel.poll_once()
    assert net is not None
    for text in net.frames:
        page.receive(text)
    return gate, page


def committed_for_page(gate: ModelGate) -> list[int]:
    return [r.id for r in gate.rows if r.user_id == PAGE_USER and r.state == "committed"]
