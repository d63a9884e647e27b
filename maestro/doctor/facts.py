"""What `maestro doctor` read from a running Maestro, as plain data: nothing judged here, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from nats.js.api import StreamInfo

from maestro.backlog import Backlog
from maestro.discovery import InstanceStats
from proto.v1 import TaskRecord


@dataclass(frozen=True)
class Server:
    """The NATS server the doctor reached."""

    url: str
    version: str
    jetstream: bool
    """Whether its JetStream answered (an account with JetStream enabled)."""


@dataclass(frozen=True)
class Unread:
    """Something the doctor could not read, and why (permissions, a time-out, a bucket too large)."""

    what: str
    why: str


@dataclass(frozen=True)
class Letter:
    """One dead letter, without its data: where it came from, why, and when."""

    seq: int
    origin: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class OverdueHold:
    """A budget hold still stored after its ttl ran out (the budget's sweeper releases such holds)."""

    tenant: str
    reservation_id: str
    amount_micro_usd: int
    expired_at: datetime


@dataclass(frozen=True)
class Facts:
    """Everything read at one moment. A read that failed leaves its field empty and says so in `unread`."""

    server: Server
    read_at: datetime
    streams: Mapping[str, StreamInfo] = field(default_factory=dict)
    """Every stream on the server, by name (Maestro's, its buckets' and its store's among them)."""
    backlog: Backlog | None = None
    """Maestro's durable consumers and the DLQ's depth (maestro/backlog.py)."""
    letters: tuple[Letter, ...] = ()
    """The newest few dead letters, newest first."""
    open_tasks: tuple[TaskRecord, ...] = ()
    """The records of tasks queued or running."""
    holds: tuple[OverdueHold, ...] = ()
    """Budget holds past their ttl."""
    services: tuple[InstanceStats, ...] = ()
    """Every instance of a nats micro service that answered `$SRV.STATS`."""
    served_roles: frozenset[str] = frozenset()
    """The roles some running agent announces (the workers bucket)."""
    unread: tuple[Unread, ...] = ()

    def could_not_read(self, what: str) -> bool:
        """Whether the read named `what` failed."""
        return any(u.what == what for u in self.unread)


# What each read is called in `Unread.what`.
READ_STREAMS = "streams"
READ_CONSUMERS = "consumers"
READ_LETTERS = "dead letters"
READ_TASKS = "tasks"
READ_HOLDS = "budget holds"
READ_SERVICES = "services"
READ_WORKERS = "workers"
