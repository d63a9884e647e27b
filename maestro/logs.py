"""JSON log lines: one object per line, with task_id, tenant and trace_id where known.

Context comes from `extra={...}` on the call, or from `bind()` for everything logged while a message is
handled (the bus binds the trace id of each message it hands to a handler).
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import IO

import msgspec

_CONTEXT_KEYS = ("task_id", "tenant", "trace_id", "subject", "service")
_encoder = msgspec.json.Encoder()
_bound: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "maestro_log_context", default=None
)


def bind(**fields: str | None) -> contextvars.Token[dict[str, str] | None]:
    """Add fields to every line logged from this task (and tasks it starts) until reset(token)."""
    merged = {**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    return _bound.set(merged)


def reset(token: contextvars.Token[dict[str, str] | None]) -> None:
    """Undo a bind()."""
    _bound.reset(token)


class BoundContext(logging.Filter):
    """Copies the bound fields onto each record as it is logged, while the logging task's context is live."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_bound.get() or {}).items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; extra context comes from `extra={...}`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


def json_handler(stream: IO[str]) -> logging.Handler:
    """A handler writing JSON lines to `stream`, with the bound context on every line."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(BoundContext())
    return handler


def setup_logging(level: str) -> None:
    """Send every log record to stderr as JSON lines; called once from a main()."""
    handler = json_handler(sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
