"""The scheduled retrain: a loop in the app's lifespan; and the warm-up when a GP opens
the request form.

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
import threading
from collections.abc import AsyncIterator
from pathlib import Path

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


_warming = threading.Lock()
_warmed: set[Path] = set()


def start_warm_up(engine: Engine, settings: Settings) -> bool:
    """Load the analyser and the model in a background thread, once per process and data
    directory: a GP has opened the request form, and loading takes seconds that the first
    suggestion should not wait for. False when it was already started."""
    with _warming:
        if settings.var_dir in _warmed:
            return False
        _warmed.add(settings.var_dir)

    def run() -> None:
        try:
            warm_up_once(engine, settings)
        except Exception:
            log.exception("assist warm-up failed")

    threading.Thread(target=run, name="assist-warm-up", daemon=True).start()
    return True


async def retrain_loop(engine: Engine, settings: Settings) -> None:
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
