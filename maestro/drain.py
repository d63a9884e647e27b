"""How `maestro up` stops the mesh: in stages, each once the one before has exited, nats-server last.

    intake         the guard: no new request is judged, reserved or queued; the API takes no new task
    running tasks  the agents: each finishes its tasks (or hands them back to the stream) and exits
    the rest       the orchestrator and the budget, once every stored event is folded into its record
    nats-server    last, after every service has closed its connection

A Ctrl-C at the terminal reaches every process of the foreground group at once, so the children run in
sessions of their own (maestro/supervisor.py) and only ever stop when the supervisor says so, in this order.
Everything shares one deadline; a service still running at the deadline is killed (what it held goes back
to its stream after the ack wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from maestro import topics
from maestro.settings import Settings

log = logging.getLogger(__name__)

# How often the orchestrator's backlog is asked for while the drain waits for it (nothing announces it).
_POLL_S = 0.05


@dataclass(frozen=True)
class Stage:
    """One step of the drain: which services stop together."""

    what: str
    """What stops, for the log."""
    modules: tuple[str, ...]
    """The services' modules; empty: every service no earlier stage stopped."""
    once_folded: bool = False
    """Wait first until the orchestrator has folded every stored event into its record."""
    closes: tuple[str, ...] = ()
    """Services told to take no new work (SIGUSR1) at this stage, though they keep running."""


STAGES = (
    # The API answers 503 to new submissions from here on; its orchestrator keeps folding events.
    Stage("intake", ("services.guard",), closes=("services.orchestrator",)),
    Stage("running tasks", ("services.agents",)),
    Stage("the rest", (), once_folded=True),
)


def stages(children: Sequence[tuple[str, str]]) -> list[tuple[Stage, list[str]]]:
    """The names of the children (name, module) each stage stops, in order; a stage with none is left out."""
    left = list(children)
    planned: list[tuple[Stage, list[str]]] = []
    for stage in STAGES:
        now = [c for c in left if not stage.modules or c[1] in stage.modules]
        left = [c for c in left if c not in now]
        if now:
            planned.append((stage, [name for name, _ in now]))
    return planned


def default_drain_s(settings: Settings) -> float:
    """The drain deadline when none is given: a service gives its in-flight work max(ack wait, 10 s) to
    finish after SIGTERM (maestro/runtime.py), and the stages around the agents' get 10 s more."""
    return max(settings.ack_wait_s, 10.0) + 10.0


async def events_folded(js: JetStreamContext, deadline: float) -> bool:
    """Wait until the orchestrator has taken and settled every stored event, or the loop's clock reaches
    `deadline` (False), so that a task that ended during the drain does not read `running` until the next
    start. True too when the orchestrator never consumed (there is nothing it could fold)."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            async with asyncio.timeout_at(deadline):
                info = await js.consumer_info(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR)
        except NotFoundError:
            return True
        except (nats.errors.Error, TimeoutError):
            pass  # the server is not reachable this moment (restarting, say): ask again
        else:
            if not info.num_pending and not info.num_ack_pending:
                return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await asyncio.sleep(_POLL_S)
    return False
