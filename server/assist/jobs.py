"""The scheduled retrain: a loop in the app's lifespan (which first warms the assist up).

Every `assist_retrain_minutes` it counts the completed consults of consenting
organisations; when `assist_retrain_min_new` have closed since the stored model was
trained, it trains again (in a worker thread, so requests keep being served) and writes
the model to var/assist/, where every process picks it up. Several processes may run the
loop: each trains the same data to the same model and the file is replaced atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy import Engine
from sqlmodel import Session

from server.assist import service
from server.settings import Settings

log = logging.getLogger("dari.assist")


def retrain_once(engine: Engine, settings: Settings) -> bool:
    """One check; True when a new model was trained."""
    with Session(engine, expire_on_commit=False) as session:
        return service.retrain_if_due(session, settings) is not None


def warm_up_once(engine: Engine, settings: Settings) -> bool:
    with Session(engine, expire_on_commit=False) as session:
        return service.warm_up(session, settings)


async def retrain_loop(engine: Engine, settings: Settings) -> None:
    # Loading the analyser and the model takes seconds: do it now, in a worker thread,
    # rather than on the first GP's keystroke (not in tests, where apps come and go).
    if not settings.testing:
        try:
            await asyncio.to_thread(warm_up_once, engine, settings)
        except Exception:
            log.exception("assist warm-up failed")
    while True:
        await asyncio.sleep(settings.assist_retrain_minutes * 60)
        try:
            if await asyncio.to_thread(retrain_once, engine, settings):
                log.info("assist model retrained")
        except Exception:  # keep the loop alive; the next round retries
            log.exception("assist retrain failed")


@contextlib.asynccontextmanager
async def retrain_task(engine: Engine, settings: Settings) -> AsyncIterator[None]:
    """The retrain loop for the app's lifespan (off when assist_retrain_minutes is 0)."""
    if settings.assist_retrain_minutes <= 0:
        yield
        return
    task = asyncio.create_task(retrain_loop(engine, settings))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
