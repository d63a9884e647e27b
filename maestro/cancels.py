"""Cancels that a library swallowed, raised again where our own loops can see them."""

from __future__ import annotations

import asyncio


def raise_swallowed_cancel() -> None:
    """Raise CancelledError if this task was cancelled and nothing took the cancel back.

    nats-py's `Client._flush_pending` catches a CancelledError that lands while it flushes, and every publish,
    subscribe and request flushes: the task goes on as if never cancelled, and a loop that waits for its
    next message or tick would outlive a task group that is waiting for it to end. Python still counts the
    cancel (`Task.cancelling`; `asyncio.timeout` and task groups take back the ones they handled), so a loop
    that calls this at each step ends as the cancel meant it to.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
