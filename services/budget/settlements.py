"""Settling: commit a reservation's usage, or release its hold. No I/O.

What a commit answers, by what the ledger knows of its reservation id:
- held: charged at the usage's price (the hold's amount for a model without a price), the rest released.
- settled and remembered (the newest SETTLED_KEPT): a replay; already_settled, with what the first commit
  charged (0 after a release, and 0 for ids settled by a version that did not keep amounts), and nothing
  changes.
- expired and remembered: a late commit; charged like a held one (the whole charge, as no hold is left),
  counted in spent and in the role's and model's tallies, marked `late`, announced as LateCommit. It may
  take the tenant past its limit: that is overage, charged anyway, since the money is spent. A hold whose
  ttl ended just before the batch that brings its commit (no touch noticed it yet) is late the same way:
  it is charged, and its expiry is not announced separately.
- priced past the bound on money, or taking the window's spent money or tokens past their bounds: Refused
  (400); nothing changes, and the hold stays (or stays remembered) for a believable commit.
- anything else: Unknown, which the service answers with 404. A reservation never made is unknown, and so
  is one settled or expired so long ago that it fell out of the bounded memory (SETTLED_KEPT later
  settlements, or MAX_HOLDS later holds): hours at any realistic rate, far past every stream's duplicate
  window. Such a commit is not charged, but it is not mistaken for a replay either: the caller is told.
Entries written by the previous version put expired holds among the settled ids, without amounts: a late
commit for one of those answers already_settled with 0, as that version did.

A release is total: it gives back an open hold, and for anything else (settled, expired, unknown) it
changes nothing and answers already_settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from proto.v1 import Commit, LateCommit, Overage, Release, Settlement
from proto.v1.budget import task_of_reservation
from services.budget.book import Book, Refused


@dataclass(frozen=True)
class Unknown:
    """The answer to a commit for a reservation the ledger does not know: never held, or forgotten."""

    tenant: str
    reservation_id: str

    @property
    def reason(self) -> str:
        return (
            f"unknown reservation {self.reservation_id!r} of {self.tenant}: never held, or settled or "
            "expired too long ago to be remembered; nothing was charged"
        )


def commit(book: Book, req: Commit) -> Settlement | Unknown | Refused:
    """Charge the reservation its usage: held, late, a replay, Refused or Unknown (the module's docstring)."""
    rid = req.reservation_id
    hold = book.holds.get(rid)
    if hold is not None:
        return _settle(book, req, hold.role, hold.model, hold.amount_micro_usd, None)
    if rid in book.settled:
        return _already(book, req.tenant, rid, book.settled.charged(rid))
    expired = book.lapsed.get(rid)
    if expired is not None:
        return _settle(book, req, expired.role, expired.model, expired.amount_micro_usd, expired.expired_at)
    return Unknown(req.tenant, rid)


def _settle(
    book: Book, req: Commit, role: str, model: str, held: int, expired_at: float | None
) -> Settlement | Refused:
    """Charge a commit whose hold of `held` is still open (expired_at None) or expired at `expired_at`."""
    rid, usage = req.reservation_id, req.usage
    tokens = usage.input_tokens + usage.output_tokens
    cost = book.pricing.cost(usage)
    reasons = []
    if expired_at is not None:
        reasons.append(
            f"charged after its hold expired at {datetime.fromtimestamp(expired_at, UTC).isoformat()}"
        )
    if cost is None:
        cost = held
        reasons.append(f"model {usage.model!r} has no price: charged the hold")
    why = book.past_bounds(spent=cost, spent_tokens=tokens)
    if why:
        return Refused(
            f"commit of {rid} refused: its usage costs {cost} micro-USD and {tokens} tokens; {why}"
        )
    if expired_at is None:
        book.drop(rid)
    else:
        book.lapsed.pop(rid)
        book.expired.pop(rid, None)  # expired on this touch: the late commit is the one event
    # An open hold covers the charge up to its amount; an expired one gave its money back, so whatever of
    # the charge the tenant's remaining money does not cover is overage.
    cover = held if expired_at is None else max(0, book.remaining)
    overage = max(0, cost - cover)
    book.spend(rid, role, usage.model or model, cost, tokens)
    book.fields["overage_micro_usd"] += overage
    event: dict[str, Any] = dict(
        book.stamp(),
        reservation_id=rid,
        held_micro_usd=held,
        charged_micro_usd=cost,
        overage_micro_usd=overage,
        remaining_micro_usd=book.remaining,
    )
    if expired_at is not None:
        book.events.append(
            LateCommit(
                **event, task_id=task_of_reservation(rid), expired_at=datetime.fromtimestamp(expired_at, UTC)
            )
        )
    elif overage:
        book.events.append(Overage(**event))
    return Settlement(
        tenant=req.tenant,
        reservation_id=rid,
        charged_micro_usd=cost,
        released_micro_usd=max(0, held - cost) if expired_at is None else 0,
        remaining_micro_usd=book.remaining,
        overage_micro_usd=overage,
        reason="; ".join(reasons),
        late=expired_at is not None,
    )


def release(book: Book, req: Release) -> Settlement:
    """Give an open hold back without charging; anything else changes nothing and is already settled."""
    rid = req.reservation_id
    if rid not in book.holds:
        return _already(book, req.tenant, rid)
    hold = book.drop(rid)
    book.settled.add(rid)
    return Settlement(
        tenant=req.tenant,
        reservation_id=rid,
        released_micro_usd=hold.amount_micro_usd,
        remaining_micro_usd=book.remaining,
    )


def _already(book: Book, tenant: str, rid: str, charged: int = 0) -> Settlement:
    return Settlement(
        tenant=tenant,
        reservation_id=rid,
        charged_micro_usd=charged,
        already_settled=True,
        remaining_micro_usd=book.remaining,
    )
