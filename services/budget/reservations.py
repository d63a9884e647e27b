"""Reserving: hold a task's estimate when the tenant can afford it, or say why not. No I/O.

Each attempt of a task has one reservation (reservation_id_for): reserving the same attempt again finds
the open hold, or grants nothing new when the reservation was settled or its hold expired (holding again
would let an attempt renew its hold forever; its commit is charged as a late one). A retry is another
attempt: it holds anew under its own id, whatever became of the earlier attempts' holds, and every hold
counts against the same limits. A reservation that fits the money but not the ledger's room
is Busy: backpressure, not a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

from proto.v1 import Reservation, Reserve, reservation_id_for
from services.budget.book import Book, Refused
from services.budget.entry import BACKPRESSURE_RETRY_S, MAX_HOLDS, Hold


@dataclass(frozen=True)
class Busy:
    """The answer to a reservation that does not fit for lack of room, not money: retry after a while."""

    reason: str
    retry_after_s: float


def reserve(book: Book, req: Reserve) -> Reservation | Busy | Refused:
    """Hold the estimate for the task, find its reservation, refuse it with why, or answer Busy; Refused
    when the hold would take what the tenant holds past the bound on money or tokens."""
    rid = reservation_id_for(req.task_id, req.attempt)
    hold = book.holds.get(rid)
    if hold is not None:
        return _granted(book, req, rid, hold.amount_micro_usd)
    if rid in book.settled:
        return _granted(book, req, rid, 0, reason="already settled")
    if rid in book.lapsed:
        return _granted(book, req, rid, 0, reason="hold expired")
    why = refusal(book, req)
    if why:
        return Reservation(
            tenant=req.tenant,
            task_id=req.task_id,
            granted=False,
            remaining_micro_usd=book.remaining,
            reason=why,
        )
    price = book.pricing.price(req.model) if req.model else None
    free = price is not None and price.free
    amount, tokens = (0, 0) if free else (req.estimate_micro_usd, req.estimate_tokens)
    why = book.past_bounds(held=amount, held_tokens=tokens)
    if why:
        return Refused(f"reservation of {req.task_id} refused: {why}")
    hold = Hold("", amount, book.now + req.ttl_s, tokens, req.role, req.model)
    if len(book.holds) >= MAX_HOLDS or not book.fits(rid, hold):
        # Room, not money: the money checks above come first, so a task that cannot be afforded is
        # told so at once instead of being retried until it can.
        return Busy(
            f"tenant {req.tenant} has {len(book.holds)} open reservations, as many as its ledger has room "
            f"for (at most {MAX_HOLDS}): retry once some are committed or released",
            BACKPRESSURE_RETRY_S,
        )
    book.hold(rid, hold)
    return _granted(book, req, rid, amount)


def refusal(book: Book, req: Reserve) -> str:
    """Why this reservation cannot be afforded, or '' when it can."""
    if req.model:
        price = book.pricing.price(req.model)
        if price is None:
            return f"model {req.model!r} has no price: add it to MAESTRO_PRICING to use it"
        if price.free:
            return ""  # a local model costs nothing, whatever the budget
    f = book.fields
    ceiling = f["task_ceiling_micro_usd"]
    if ceiling is not None and req.estimate_micro_usd > ceiling:
        return f"estimate {req.estimate_micro_usd} exceeds the per-task ceiling of {ceiling} micro-USD"
    if f["spent_micro_usd"] > book.limit:
        return (
            f"over its limit: spent {f['spent_micro_usd']} > limit {book.limit} micro-USD; "
            "no new reservations until the window rolls over or the limit is raised"
        )
    if f["spent_micro_usd"] + f["held_micro_usd"] + req.estimate_micro_usd > book.limit:
        return (
            f"budget exceeded: spent {f['spent_micro_usd']} + held {f['held_micro_usd']} + estimate "
            f"{req.estimate_micro_usd} > limit {book.limit} micro-USD"
        )
    limit_tokens = f["limit_tokens"]
    tokens_after = f["spent_tokens"] + f["held_tokens"] + req.estimate_tokens
    if limit_tokens is not None and tokens_after > limit_tokens:
        return (
            f"token budget exceeded: spent {f['spent_tokens']} + held {f['held_tokens']} + estimate "
            f"{req.estimate_tokens} > limit {limit_tokens} tokens"
        )
    for kind, name, limits in (
        ("role", req.role, f["role_limits"]),
        ("model", req.model, f["model_limits"]),
    ):
        limit = limits.get(name) if name else None
        if limit is not None:
            why = book.tallies.refusal(kind, name, limit, req.estimate_micro_usd, req.estimate_tokens)
            if why:
                return why
    return ""


def _granted(book: Book, req: Reserve, rid: str, held: int, reason: str = "") -> Reservation:
    return Reservation(
        tenant=req.tenant,
        task_id=req.task_id,
        granted=True,
        reservation_id=rid,
        held_micro_usd=held,
        remaining_micro_usd=book.remaining,
        reason=reason,
    )
