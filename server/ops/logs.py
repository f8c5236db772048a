"""Structured logs: one JSON object per line, carrying ids and never clinical text.

Every record gets the request id (and, once known, the user id and the consult's public
id) from a context variable that the request middleware sets; the thread pool copies
it into handlers, so a line logged anywhere during a request names that request.

What a line may hold is deliberately narrow: the message (our own fixed texts, with
ids), known id fields, and for an exception its class and the code locations, not its
message: a database error repeats the statement's parameters, which can be a clinical
question or a patient's chart number.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Fields copied from `extra=` into the JSON line; anything else given as extra is dropped.
ALLOWED_EXTRA = (
    "method",
    "route",
    "status",
    "duration_ms",
    "close_code",
    "kind",
    "count",
)
CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("dari_log_context", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def valid_request_id(value: str | None) -> str | None:
    """An incoming X-Request-ID is kept only if it is a short plain token."""
    return value if value and _REQUEST_ID.match(value) else None


def bind(**values: str | int | None) -> None:
    """Add ids to the current request's log context (no-op outside a request)."""
    context = CONTEXT.get()
    if context is None:
        return
    for key, value in values.items():
        if value is not None:
            context[key] = str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids, safe extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = CONTEXT.get()
        if context:
            line.update(context)
        for key in ALLOWED_EXTRA:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            line["exc_type"] = kind.__name__
            # Where it happened, not what it said (see the module docstring).
            line["stack"] = [
                f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno} {frame.name}"
                for frame in traceback.extract_tb(tb)[-8:]
            ]
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig for the app and for uvicorn (its own loggers write JSON too).

    uvicorn's access log is off: its line holds the raw path and query string; the
    request middleware writes one line per request instead, with the route template.
    """
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "server.ops.logs.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
