"""The FastAPI application: settings, database, routers, error handlers, /ws."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import WebSocketRoute

from server.accounts import pages as account_pages
from server.accounts import router as accounts_router
from server.accounts.deps import verify_csrf
from server.admin import pages as admin_pages
from server.assist import jobs as assist_jobs
from server.assist import pages as assist_pages
from server.assist import router as assist_router
from server.audit import pages as audit_pages
from server.audit import router as audit_router
from server.audit import service as audit_service
from server.calls import pages as call_pages
from server.calls import router as calls_router
from server.calls.gatekeeper import build_signaling
from server.consults import pages as consult_pages
from server.consults import router as consults_router
from server.db import engine_for, reader_engine, request_concurrency
from server.equity import pages as equity_pages
from server.errors import ERROR_RESPONSES, install_error_handlers
from server.home import pages as home_pages
from server.home import static as home_static
from server.middleware import InputGuard, RequestGate, SecurityHeadersMiddleware
from server.notes import pages as notes_pages
from server.notes import router as notes_router
from server.notes.gate import ServerNoteGate
from server.notifications import service as notifications
from server.ops import metrics as ops_metrics
from server.ops import router as ops_router
from server.ops.middleware import ObservabilityMiddleware
from server.scheduling import pages as scheduling_pages
from server.scheduling import router as scheduling_router
from server.scheduling import urgent as scheduling_urgent
from server.scheduling import urgent_pages
from server.settings import Settings, get_settings
from signaling.app import SocketLane
from signaling.notes import NotesService
from web import render

log = logging.getLogger("dari")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    settings = settings or get_settings()
    # A stale catalog would show newly edited messages untranslated: refuse to start.
    render.require_compiled()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Mounted sub-apps get no lifespan of their own: start signaling here.
        await app.state.signaling.start()
        # Notifications are delivered as soon as their transaction commits (every process).
        unwake = notifications.add_waker(app.state.signaling.wake_notifications)
        try:
            async with (
                scheduling_urgent.escalation_task(app.state.engine, settings),
                assist_jobs.retrain_task(app.state.engine, settings),
            ):
                yield
        finally:
            unwake()
            await app.state.signaling.stop()
            await app.state.gatekeeper.close()
            app.state.notes_gate.close()
        # Close pooled connections so a stopped server leaves no open file or socket
        # (signaling's reads have a pool of their own on PostgreSQL).
        reader_engine(app.state.engine).dispose()
        app.state.engine.dispose()

    app = FastAPI(
        title="Dari",
        summary="Remote consultation between rural GPs and specialists",
        version="0.1.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        # CSRF is checked once here, for every state-changing route of every router.
        dependencies=[Depends(verify_csrf)],
    )
    app.state.settings = settings
    app.state.secret_key = settings.resolved_secret_key()
    app.state.engine = engine_for(settings.resolved_database_url())
    audit_service.configure(
        settings.resolved_database_url(),
        settings.resolved_audit_key(),
        settings.resolved_audit_checkpoints(),
        settings.audit_syslog,
    )

    app.state.signaling = build_signaling(settings, app.state.engine, app.state.secret_key)
    app.state.gatekeeper = app.state.signaling.gate

    install_error_handlers(app)
    render.install(app, account_pages.page_viewer)
    app.add_middleware(GZipMiddleware, minimum_size=800)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestGate, limit=request_concurrency(app.state.engine))
    # Signaling sockets skip the layers below (signaling/app.py SocketLane); the /ws
    # mount at the end still serves anything else under /ws.
    signaling_app = app.state.signaling.app()
    app.add_middleware(
        SocketLane, target=signaling_app, prefix="/ws", routes=app.state.signaling.routes()
    )
    app.add_middleware(InputGuard)
    # Outermost: request id, one log line and the metrics for every request and socket.
    app.add_middleware(ObservabilityMiddleware)
    ops_metrics.LIVE.attach(app.state.signaling)

    app.include_router(accounts_router.router)
    app.include_router(account_pages.router)
    app.include_router(consults_router.router)
    app.include_router(consult_pages.router)
    app.include_router(audit_router.router)
    app.include_router(audit_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(notes_router.router)
    # The shared notes' socket, on the signaling stack (signaling/notes.py).
    app.state.notes_gate = ServerNoteGate(settings, app.state.engine)
    app.state.notes = NotesService(app.state.signaling, app.state.notes_gate)
    app.router.routes.append(WebSocketRoute("/notes/ws/{public_id}", app.state.notes.endpoint))
    app.include_router(notes_pages.router)
    app.include_router(scheduling_router.router)
    app.include_router(scheduling_router.feeds)
    app.include_router(scheduling_pages.router)
    app.include_router(urgent_pages.router)
    app.include_router(home_pages.router)
    app.include_router(ops_router.router)
    app.include_router(equity_pages.router)
    app.include_router(call_pages.router)
    app.include_router(home_static.router)
    app.include_router(calls_router.router)
    app.include_router(assist_router.router)
    app.include_router(assist_pages.router)
    app.mount("/ws", signaling_app)
    return app
