"""A tenant's budget ledger and the pure arithmetic on it: reserve, commit, release, set, view. No I/O.

apply() runs a batch of operations on one tenant's stored entry (entry.py) through a working copy
(book.py): reservations.py holds estimates, settlements.py charges and releases them, and the book
configures limits and reads the ledger. Callers see only this module: the operations, their answers,
and the entry they store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maestro.pricing import PriceTable
from proto.v1 import (
    BudgetEvents,
    Commit,
    GetLedger,
    LedgerView,
    Release,
    Reservation,
    Reserve,
    SetBudget,
    Settlement,
)
from services.budget import entry, reservations, settlements
from services.budget.book import Book, Refused, Summary
from services.budget.entry import MAX_HOLDS, MAX_SCOPES, SETTLED_KEPT, Hold, Ledger, new_ledger
from services.budget.reservations import Busy
from services.budget.settlements import Unknown

__all__ = [
    "MAX_HOLDS",
    "MAX_SCOPES",
    "SETTLED_KEPT",
    "Answer",
    "Applied",
    "Busy",
    "Hold",
    "Ledger",
    "Operation",
    "Refused",
    "Summary",
    "Touch",
    "Unknown",
    "apply",
    "encoded",
    "new_ledger",
]


@dataclass(frozen=True)
class Touch:
    """Touch a ledger and nothing else, so holds past their ttl expire (the sweeper's operation)."""

    tenant: str


Operation = Reserve | Commit | Release | GetLedger | SetBudget | Touch
Answer = Reservation | Settlement | LedgerView | Unknown | Busy | Refused | None


@dataclass(frozen=True)
class Applied:
    """What a batch did: the new ledger, one answer per operation, whether it changed, and its events; with
    what the next batch on the new ledger may start from."""

    ledger: Ledger
    answers: list[Answer]
    changed: bool
    events: list[BudgetEvents]
    summary: Summary | None = None


def _answer(book: Book, op: Operation) -> Answer:
    match op:
        case Reserve():
            return reservations.reserve(book, op)
        case Commit():
            return settlements.commit(book, op)
        case Release():
            return settlements.release(book, op)
        case GetLedger():
            return book.view()
        case SetBudget():
            return book.configure(op)
        case Touch():
            return None


def encoded(applied: Applied) -> bytes:
    """The bytes of the entry a batch gives back (codec.encode's), from its holds' items where it has them."""
    summary = applied.summary
    if summary is None or summary.holds_items is None or summary.expired_items is None:
        return entry.encode(applied.ledger)
    return entry.encode(applied.ledger, summary.holds_items.values(), summary.expired_items.values())


def apply(
    ledger: Ledger,
    operations: Sequence[Operation],
    now: float,
    pricing: PriceTable,
    summary: Summary | None = None,
) -> Applied:
    """Apply operations in order at `now` (epoch seconds): rolls the window over and expires holds first.

    Copies the ledger once for the whole batch, which is what makes group commit cheap. `summary` is the
    one handed on with `ledger` by the batch that made it (Applied.summary), or None for a ledger as read.
    """
    book = Book(ledger, now, pricing, summary)
    answers = [_answer(book, op) for op in operations]
    book.finish()
    return Applied(book.ledger(), answers, book.changed, book.events, book.summary())
