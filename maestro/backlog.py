"""How far behind Maestro's durable consumers are, and how deep the DLQ is: one read of the server.

Maestro knows which durables it runs (`durables`), so the read asks for each one's info by name instead of
listing every consumer of every stream: a service's NATS credentials may read a consumer's info but not list
consumers (maestro/access), and a durable that should be there and is not is a fact worth reporting too.
`maestro doctor` judges what is read; the orchestrator exports it as gauges (services/orchestrator/lag.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import NotFoundError

from maestro import topics
from maestro.topology import backlog_consumers
from proto.v1 import ROLES

_T = TypeVar("_T")


@dataclass(frozen=True)
class Durable:
    """A durable consumer Maestro runs: the stream it reads and its name."""

    stream: str
    consumer: str


def durables(roles: Iterable[str] = ROLES) -> tuple[Durable, ...]:
    """Every durable consumer of Maestro's services, the agents' for each of `roles`."""
    return (
        Durable(topics.STREAM_REQUESTS, topics.DURABLE_GUARD),
        Durable(topics.STREAM_APPROVALS, topics.DURABLE_GUARD_APPROVALS),
        Durable(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR),
        Durable(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR_REVIEW_ENDS),
        Durable(topics.STREAM_WORKFLOWS, topics.DURABLE_ORCHESTRATOR_WORKFLOWS),
        Durable(topics.STREAM_HOOKS, topics.DURABLE_ORCHESTRATOR_REVIEWS),
        Durable(topics.STREAM_NOTIFY, topics.DURABLE_NOTIFIER),
        *(Durable(topics.STREAM_TASKS, topics.agents_durable(role)) for role in roles),
    )


def waiting_durables(roles: Iterable[str] = ROLES) -> tuple[Durable, ...]:
    """The dispatcher's never-pulled consumers of the waiting stream, one per role of `roles`
    (maestro/topology.py): each one's pending count is its role's tasks waiting for their turn, what
    autoscalers read."""
    names = {topics.backlog_durable(role) for role in roles}
    return tuple(
        Durable(topics.STREAM_WAITING, str(c.durable_name))
        for c in backlog_consumers()
        if c.durable_name in names
    )


def wanted_durables(roles: Iterable[str], *, fair_dispatch: bool) -> tuple[Durable, ...]:
    """The durables a mesh serving `roles` runs: every service's, and with fair dispatch the dispatcher's
    backlog consumers (what the orchestrator's gauges and `maestro doctor` read)."""
    roles = tuple(roles)
    return (*durables(roles), *(waiting_durables(roles) if fair_dispatch else ()))


@dataclass(frozen=True)
class ConsumerLag:
    """One durable consumer as the server has it now."""

    stream: str
    consumer: str
    pending: int
    """Messages stored for it and not yet delivered: its backlog."""
    ack_pending: int
    """Messages delivered and not yet acknowledged: work in progress (or stuck)."""
    redelivered: int
    """Messages delivered more than once and not yet acknowledged."""
    waiting: int
    """Pull requests waiting for messages: how many pullers stand ready (0 while nobody pulls)."""
    last_active: datetime | None
    """When it last delivered a message (UTC); None if it never did."""
    filter_subjects: tuple[str, ...]
    """The subjects it takes from its stream."""
    ack_wait_s: float | None
    max_deliver: int | None

    @classmethod
    def of(cls, info: ConsumerInfo) -> ConsumerLag:
        """The lag in a consumer's info, as the server answered it."""
        config = info.config
        filters = config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
        return cls(
            stream=info.stream_name,
            consumer=info.name,
            pending=info.num_pending or 0,
            ack_pending=info.num_ack_pending or 0,
            redelivered=info.num_redelivered or 0,
            waiting=info.num_waiting or 0,
            last_active=info.delivered.last_active if info.delivered else None,
            filter_subjects=tuple(filters),
            ack_wait_s=config.ack_wait,
            max_deliver=config.max_deliver,
        )


@dataclass(frozen=True)
class Backlog:
    """Every durable's lag, the durables that are missing, and the DLQ's depth, read at one moment."""

    consumers: tuple[ConsumerLag, ...]
    missing: tuple[Durable, ...]
    """Durables asked for that the server does not have (or whose stream it does not have)."""
    dlq_depth: int | None
    """Dead letters stored in the DLQ stream; None when the stream does not exist."""
    read_at: datetime

    def consumer(self, name: str) -> ConsumerLag | None:
        """The lag of the consumer named `name`, if it was read."""
        return next((c for c in self.consumers if c.consumer == name), None)


async def read_backlog(js: JetStreamContext, wanted: Iterable[Durable] | None = None) -> Backlog:
    """Read each of `wanted` (default: every durable of every role) and the DLQ's depth, all at once.
    Raises what the JetStream API raises when the server does not answer (TimeoutError, nats errors); a
    missing durable or stream is an answer, not an error."""
    asked = tuple(durables() if wanted is None else wanted)
    # Every read is awaited to its end and the first failure raised alone: a task group would raise an
    # ExceptionGroup, which the callers' `except` of the API's errors does not catch.
    answers, (dlq,) = await asyncio.gather(
        asyncio.gather(*(_consumer_info(js, d) for d in asked), return_exceptions=True),
        asyncio.gather(_stream_depth(js, topics.STREAM_DLQ), return_exceptions=True),
    )
    read = [(d, _answer(a)) for d, a in zip(asked, answers, strict=True)]
    return Backlog(
        consumers=tuple(ConsumerLag.of(info) for _, info in read if info is not None),
        missing=tuple(d for d, info in read if info is None),
        dlq_depth=_answer(dlq),
        read_at=datetime.now(UTC),
    )


def _answer(answer: _T | BaseException) -> _T:
    """What a read gave, or what it raised raised again."""
    if isinstance(answer, BaseException):
        raise answer
    return answer


async def _consumer_info(js: JetStreamContext, durable: Durable) -> ConsumerInfo | None:
    try:
        info: ConsumerInfo = await js.consumer_info(durable.stream, durable.consumer)
    except NotFoundError:
        return None
    return info


async def _stream_depth(js: JetStreamContext, stream: str) -> int | None:
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        return None
    return info.state.messages
