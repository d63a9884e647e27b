"""Failures that say NATS (or a stream's leader) cannot be reached right now, not that the work is at fault:
what a consumer hands back for later and what a service starts again after, rather than a verdict."""

from __future__ import annotations

import nats.errors
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    NoStreamResponseError,
    ServiceUnavailableError,
    TimeoutError,
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` is one of UNAVAILABLE, or a group (a task group's failure) of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_unavailable(inner) for inner in exc.exceptions)
    return isinstance(exc, UNAVAILABLE)
