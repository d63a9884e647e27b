"""What a scenario collects before it judges: submissions, records, events, executions, ledgers, kills.

Plain values with no I/O, so the invariants over them are pure functions with tests of their own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chaos.effects import Execution
from proto.v1 import LedgerView, TaskEvent, TaskRecord


@dataclass(frozen=True)
class Submission:
    """A request the server acknowledged (stored or recognised as a duplicate)."""

    task_id: str
    tenant: str
    role: str
    effect: bool = False
    """Its command appends to the effects file, so its executions can be counted."""
    must_run: bool = True
    """It is expected to run: a request meant to be refused (a credential, a conflict) is not."""


@dataclass(frozen=True)
class Kill:
    """A signal the harness sent to a process of the mesh."""

    name: str
    pid: int
    at: float
    """Wall clock seconds (time.time()) once it was delivered: a SIGKILLed process had exited by then."""
    signal: str = "SIGKILL"


@dataclass(frozen=True)
class StoredEvent:
    """A task event as the events stream holds it, with when the server stored it."""

    seq: int
    stored_at: float
    """Wall clock seconds of the server's timestamp."""
    event: TaskEvent


@dataclass(frozen=True)
class LedgerSample:
    """A tenant's limit, spend and holds read at one moment."""

    tenant: str
    at: float
    limit: int
    spent: int
    held: int

    @classmethod
    def of(cls, view: LedgerView, at: float) -> LedgerSample:
        """The sample a ledger view gives."""
        return cls(view.tenant, at, view.limit_micro_usd, view.spent_micro_usd, view.held_micro_usd)


@dataclass
class Facts:
    """Everything a scenario saw; the invariants judge only this."""

    submissions: list[Submission] = field(default_factory=list)
    records: dict[str, TaskRecord] = field(default_factory=dict)
    events: dict[str, list[StoredEvent]] = field(default_factory=dict)
    executions: list[Execution] = field(default_factory=list)
    unreadable_effects: int = 0
    ledgers: dict[str, LedgerView] = field(default_factory=dict)
    """Each tenant's ledger once every task had ended (or the deadline passed)."""
    samples: list[LedgerSample] = field(default_factory=list)
    """Ledgers read while the load ran."""
    kills: list[Kill] = field(default_factory=list)
    unacknowledged: int = 0
    """Submissions the server never acknowledged within the client's patience (not counted anywhere)."""
    backlog: dict[str, str] = field(default_factory=dict)
    """Consumers that still held messages at the end, after a wait for them to drain, by durable."""
    leaks: list[str] = field(default_factory=list)
    """Where the credential planted in refused requests was found in clear (log, event, record, DLQ)."""
    refusals: list[tuple[Submission, str]] = field(default_factory=list)
    """Submissions the SDK refused (a conflict, say), with what it said; not tasks."""

    def tasks(self) -> dict[str, Submission]:
        """Each acknowledged task once, by id: the first submission of an id stands for it."""
        found: dict[str, Submission] = {}
        for submission in self.submissions:
            found.setdefault(submission.task_id, submission)
        return found


SHOWN = 4
"""How many cases a violation names before it says how many more there are."""


def some(items: Iterable[str]) -> str:
    """The first SHOWN of `items` (sorted), and how many more there are."""
    listed = sorted(items)
    shown = ", ".join(listed[:SHOWN])
    return shown + (f" (+{len(listed) - SHOWN} more)" if len(listed) > SHOWN else "")
