"""The server's side of signaling's `Gatekeeper`: sessions, access rule, outbox, call records.

Every database step runs in a thread with its own short session (or, for a read, a
bare connection), except a connect's reads on PostgreSQL, which run on the event loop
(connect_reads.py): a WebSocket never holds a DB session open for its life.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from server import db
from server.accounts import service as accounts
from server.accounts.models import User
from server.calls import connect_reads
from server.calls import service as calls
from server.calls.connect_reads import PostgresConnectReads
from server.clock import utcnow
from server.consults import access, lifecycle
from server.consults.errors import ConsultNotFound
from server.notifications import service as notifications
from server.notifications.models import Notification
from server.ops import logs, metrics
from server.settings import Settings
from signaling import tokens
from signaling.app import SignalingService
from signaling.gate import Admission, Identity, QualityReport, SignalingConfig

log = logging.getLogger("dari.calls.gatekeeper")
T = TypeVar("T")
# Above this many connected users a poll filters the window's rows in Python.
IN_LIST_LIMIT = 100


class ServerGatekeeper:
    def __init__(self, settings: Settings, engine: Engine, secret: str) -> None:
        self.settings = settings
        self.engine = engine
        self.secret = secret
        # Connects read on this one: no write lock on SQLite, no pre-ping on PostgreSQL.
        self.reader = db.reader_engine(engine)
        # ... in threads of their own, few of them (db.read_threads: one on SQLite, two
        # on PostgreSQL): each thread waiting for the interpreter lock slows the event
        # loop that accepts the sockets. With asyncio's default pool (6 threads on 2
        # cores) a connect cost ~0.25 ms more CPU (docs/benchmarks.md "Idle ...").
        self._reads: ThreadPoolExecutor | None = None  # made at the first read
        # ... except a connect's reads on PostgreSQL: on the event loop (connect_reads).
        self._loop_reads = (
            PostgresConnectReads(engine, db.read_threads(engine))
            if engine.dialect.name == "postgresql"
            else None
        )
        # The newest outbox id whose delivery lag has been recorded (metrics).
        self._lag_mark = 0

    async def _db(self, work: Callable[[Session], T]) -> T:
        def run() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                try:
                    result = work(session)
                    session.commit()
                    return result
                except BaseException:
                    session.rollback()
                    raise

        return await asyncio.to_thread(run)

    async def _read(self, work: Callable[[Session], T]) -> T:
        """Run read-only work in a thread (it must not write: SQLite holds no lock)."""

        def once() -> T:
            with Session(self.reader, expire_on_commit=False, autoflush=False) as session:
                try:
                    return work(session)
                finally:
                    session.rollback()

        return await self._retried_read(once)

    async def _read_core(self, work: Callable[[Connection], T]) -> T:
        """`_read` for Core queries, on a bare connection: a connect's reads (an ORM
        session's set-up and teardown cost more CPU than the two queries themselves)."""

        def once() -> T:
            with self.reader.connect() as connection:
                try:
                    return work(connection)
                finally:
                    connection.rollback()

        return await self._retried_read(once)

    async def _retried_read(self, once: Callable[[], T]) -> T:
        """Run a read on the gate's read threads, again once if its connection was dead."""

        def run() -> T:
            try:
                return once()
            except DBAPIError as error:
                # A pooled connection the server dropped (no pre-ping here): a read
                # is safe to run again, once, on a fresh one.
                if not db.is_disconnect(error):
                    raise
                return once()

        # As asyncio.to_thread does, with the caller's context (its log fields).
        call = functools.partial(contextvars.copy_context().run, run)
        if self._reads is None:
            threads = db.read_threads(self.engine)
            self._reads = ThreadPoolExecutor(threads, thread_name_prefix="dari-gate-read")
        return await asyncio.get_running_loop().run_in_executor(self._reads, call)

    async def close(self) -> None:
        """Let the read threads and the loop's read pool go (the app is stopping); a
        later read makes new ones (an app can be started again, as tests do)."""
        reads, self._reads = self._reads, None
        if reads is not None:
            reads.shutdown(wait=False, cancel_futures=True)
        if self._loop_reads is not None:
            await self._loop_reads.close()

    async def authenticate(self, cookie: str | None, token: str | None) -> Identity | None:
        if token:
            claims = tokens.verify_join(self.secret, token)
            if claims is None or not isinstance(claims.get("r"), str):
                return None
            user_id = claims.get("u")
            login_session = claims.get("s")
            if isinstance(login_session, int) and isinstance(user_id, int):
                if not await self._read(
                    lambda session: accounts.session_is_live(session, self.settings, login_session)
                ):
                    return None  # issued in a session that has ended since
            return Identity(
                key=str(claims.get("k")),
                name=str(claims.get("n", ""))[:80],
                kind="guest" if claims.get("t") == "guest" else "user",
                user_id=user_id if isinstance(user_id, int) else None,
                room=claims["r"],
                session=str(login_session) if isinstance(login_session, int) else None,
            )
        if not cookie:
            return None
        if self._loop_reads is not None:
            found = await self._loop_reads.peek(self.settings, cookie)
        else:
            found = await self._read_core(
                lambda connection: accounts.peek_session(connection, self.settings, cookie)
            )
        return await self._identity(found)

    async def _identity(self, found: accounts.SessionPeek | None) -> Identity | None:
        """The socket's identity for a live session; marks the session used when due."""
        if found is None:
            return None
        if accounts.needs_touch(found):
            # The rare write (once a minute per session), in a transaction of its own.
            await self._db(lambda session: accounts.touch_session(session, found.id))
        return Identity(
            key=calls.user_key(found.user_id),
            name=found.user_name,
            user_id=found.user_id,
            session=str(found.id),
        )

    async def authenticate_subscriber(
        self, cookie: str | None, token: str | None, after_id: int
    ) -> tuple[Identity | None, list[dict[str, Any]] | None]:
        """The user channel's connect: the cookie's session and the catch-up in one read."""
        if token or not cookie:
            return await self.authenticate(cookie, token), None

        def read(
            connection: Connection,
        ) -> tuple[accounts.SessionPeek | None, list[dict[str, Any]]]:
            found = accounts.peek_session(connection, self.settings, cookie)
            if found is None:
                return None, []
            return found, connect_reads.catch_up(connection, found.user_id, after_id)

        if self._loop_reads is not None:
            found, rows = await self._loop_reads.subscribe(self.settings, cookie, after_id)
        else:
            found, rows = await self._read_core(read)
        identity = await self._identity(found)
        return (identity, rows) if identity is not None else (None, None)

    async def admission(self, identity: Identity, room: str) -> Admission:
        decided = await self._admission(identity, room)
        # The socket's log line names who joined which consult: ids only, and the room
        # only once admitted (before that it is whatever the client sent).
        logs.bind(user_id=identity.user_id, consult=room if decided != Admission.DENY else None)
        return decided

    async def _admission(self, identity: Identity, room: str) -> Admission:
        if identity.room is not None:
            # A join token was issued for this room after the access check (or from
            # an invitation, which only ever leads to the lobby).
            if identity.room != room:
                return Admission.DENY
            return Admission.LOBBY if identity.kind == "guest" else Admission.ALLOW
        if identity.user_id is None:
            return Admission.DENY

        def decide(session: Session) -> Admission:
            user = session.get(User, identity.user_id)
            if user is None or not user.active:
                return Admission.DENY
            try:
                viewing = access.load_consult(session, user, room, need=access.Need.PARTICIPANT)
            except ConsultNotFound:
                return Admission.DENY  # absent or not theirs: the same answer
            if not lifecycle.call_joinable(viewing.consult):
                return Admission.DENY  # the call is over (report pending, closed, written)
            return Admission.ALLOW

        return await self._db(decide)

    async def ice_servers(self, identity: Identity) -> list[dict[str, Any]]:
        return calls.ice_servers(self.settings, identity.key)

    async def _record(self, what: str, work: Callable[[Session], Any]) -> None:
        # Call records are for dashboards: a failure is logged, never breaks the call.
        try:
            await self._db(work)
        except Exception:
            log.exception("recording %s failed", what)

    async def call_joined(self, room: str, peer_id: str, identity: Identity) -> None:
        metrics.record_call_join(identity.kind)
        await self._record(
            "a join",
            lambda session: calls.record_join(
                session,
                room,
                peer_id,
                user_id=identity.user_id,
                guest_name=identity.name if identity.kind == "guest" else "",
                kind=identity.kind,
            ),
        )

    async def call_left(self, room: str, peer_id: str, room_empty: bool) -> None:
        await self._record(
            "a leave",
            lambda session: calls.record_leave(session, room, peer_id, room_empty=room_empty),
        )

    async def call_quality(self, room: str, peer_id: str, report: QualityReport) -> None:
        metrics.record_call_quality(
            rtt_ms=report.rtt_ms, loss_pct=report.loss_pct, bitrate_kbps=report.bitrate_kbps
        )
        await self._record(
            "quality",
            lambda session: calls.record_quality(
                session,
                room,
                peer_id,
                bitrate_kbps=report.bitrate_kbps,
                rtt_ms=report.rtt_ms,
                loss_pct=report.loss_pct,
            ),
        )

    async def notifications_since(self, user_id: int, after_id: int) -> list[dict[str, Any]]:
        return await self._read_core(
            lambda connection: connect_reads.catch_up(connection, user_id, after_id)
        )

    async def notifications_after(
        self, after_id: int, user_ids: list[int]
    ) -> list[tuple[int, dict[str, Any]]]:
        _, rows = await self.notifications_window(after_id, user_ids, 0.0)
        return rows

    async def latest_notification_id(self) -> int:
        def latest(session: Session) -> int:
            value = session.exec(select(func.max(Notification.id))).first()
            return int(value or 0)

        return await self._read(latest)

    async def notifications_window(
        self, floor: int, user_ids: list[int], settled_before: float
    ) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
        def fetch(session: Session) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
            # The settled id first: the rows read after it include every row below it.
            settled = notifications.settled_id(session, datetime.fromtimestamp(settled_before, UTC))
            found: list[Notification] = []
            cursor = floor
            # Many users connected: read the whole window and keep theirs here, rather
            # than bind thousands of ids in every poll (the rows above the floor are
            # only the last window's, for everyone).
            wanted = set(user_ids) if len(user_ids) > IN_LIST_LIMIT else None
            while user_ids:
                query = select(Notification).where(col(Notification.id) > cursor)
                if wanted is None:
                    query = query.where(col(Notification.user_id).in_(user_ids))
                page = session.exec(query.order_by(col(Notification.id)).limit(1000)).all()
                found.extend(row for row in page if wanted is None or row.user_id in wanted)
                if len(page) < 1000:
                    break
                cursor = page[-1].id or cursor
            # Each row's lag once, when first read (a re-read of the window is not lag).
            fresh = [row for row in found if (row.id or 0) > self._lag_mark]
            if fresh:
                now = utcnow()
                metrics.record_outbox_lag((now - row.created_at).total_seconds() for row in fresh)
                self._lag_mark = max(self._lag_mark, *(row.id or 0 for row in fresh))
            return settled, [(row.user_id, notifications.as_dict(row)) for row in found]

        return await self._read(fetch)


def build_signaling(settings: Settings, engine: Engine, secret: str) -> SignalingService:
    """The signaling service wired to this server's settings, database and secret."""
    config = SignalingConfig(
        max_peers=settings.signaling_max_peers,
        resume_seconds=settings.signaling_resume_seconds,
        heartbeat_seconds=settings.signaling_heartbeat_seconds,
        rate_per_second=settings.signaling_rate,
        burst=settings.signaling_burst,
        allowed_origins=list(settings.allowed_origins),
        notification_poll_seconds=settings.notification_poll_seconds,
        notification_window_seconds=notifications.RESCAN_SECONDS,
        echo_max_sessions=settings.echo_max_sessions,
        echo_max_seconds=settings.echo_max_seconds,
        broker_prefix=settings.signaling_broker_prefix,
        link_secret=secret,
        link_host=settings.signaling_link_host,
        link_port=settings.signaling_link_port,
        link_advertise=settings.signaling_link_advertise,
    )
    return SignalingService(
        ServerGatekeeper(settings, engine, secret), config, settings.resolved_broker_url()
    )
