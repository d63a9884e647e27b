"""Reserving: hold a task's estimate when the tenant can afford it, or say why not. No I/O.

Each attempt of a task has one reservation (reservation_id_for): reserving the same attempt again finds
the open hold, or grants nothing new when the reservation was settled or its hold expired (holding again
would let an attempt renew its hold forever; its commit is charged as a late one). A retry is another
attempt: it holds anew under its own id, whatever became of the earlier attempts' holds, and every hold
counts against the same limits. A reservation that fits the money but not the ledger's room
is Busy: backpressure, not a refusal.

A workflow holds its whole estimate up front as one escrow hold (a plain reservation), and its steps draw
from it (Reserve.escrow names it):
- a step's hold takes its money from the escrow hold first, at most what that holds, and only the rest
  from the tenant's free budget, under the tenant's limits; the escrow hold goes down by what was drawn, so
  the tenant's held money counts it once. A step wholly covered by its escrow takes no new money: no limit
  of the tenant's refuses it, not even an overage, so a workflow that fit never stops for lack of budget.
- tokens are drawn the same way: from the escrow's held tokens first, the rest under the token limit.
- the per-task ceiling applies to the step's whole estimate, and its role's and model's sub-limits to its
  whole hold (what it draws from an escrow held under the same role or model moves there, it is not added).
- once drawn, the money is the step's: its commit charges it and its release (or expiry) gives it back to
  the tenant's free budget, not to the escrow; releasing the escrow hold gives back what it has left.
- an escrow id that names no open hold of this tenant (unknown, settled, expired) is ignored: the step
  reserves as a plain reservation. A step of a free model holds nothing and draws nothing.
- reserving a step again finds its hold and draws nothing more; the answer says what was drawn the first
  time (Reservation.drawn_micro_usd).
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


@dataclass(frozen=True)
class Draw:
    """What a hold takes from an open escrow hold: money and tokens, each at most what the escrow holds."""

    rid: str
    escrow: Hold
    micro_usd: int
    tokens: int


def reserve(book: Book, req: Reserve) -> Reservation | Busy | Refused:
    """Hold the estimate for the task, find its reservation, refuse it with why, or answer Busy; Refused
    when the hold would take what the tenant holds past the bound on money or tokens."""
    rid = reservation_id_for(req.task_id, req.attempt)
    hold = book.holds.get(rid)
    if hold is not None:
        return _granted(book, req, rid, hold.amount_micro_usd, drawn=hold.drawn_micro_usd)
    if rid in book.settled:
        return _granted(book, req, rid, 0, reason="already settled")
    if rid in book.lapsed:
        return _granted(book, req, rid, 0, reason="hold expired")
    price = book.pricing.price(req.model) if req.model else None
    free = price is not None and price.free
    amount, tokens = (0, 0) if free else (req.estimate_micro_usd, req.estimate_tokens)
    draw = _draw(book, req.escrow, amount, tokens)
    why = refusal(book, req, draw)
    if why:
        return Reservation(
            tenant=req.tenant,
            task_id=req.task_id,
            granted=False,
            remaining_micro_usd=book.remaining,
            reason=why,
        )
    drawn, drawn_tokens = (draw.micro_usd, draw.tokens) if draw else (0, 0)
    why = book.past_bounds(held=amount - drawn, held_tokens=tokens - drawn_tokens)
    if why:
        return Refused(f"reservation of {req.task_id} refused: {why}")
    hold = Hold("", amount, book.now + req.ttl_s, tokens, req.role, req.model, drawn)
    if len(book.holds) >= MAX_HOLDS or not book.fits(rid, hold):
        # Room, not money: the money checks above come first, so a task that cannot be afforded is
        # told so at once instead of being retried until it can.
        return Busy(
            f"tenant {req.tenant} has {len(book.holds)} open reservations, as many as its ledger has room "
            f"for (at most {MAX_HOLDS}): retry once some are committed or released",
            BACKPRESSURE_RETRY_S,
        )
    if draw and (drawn or drawn_tokens):
        book.draw(draw.rid, drawn, drawn_tokens)
    book.hold(rid, hold)
    return _granted(book, req, rid, amount, drawn=drawn)


def _draw(book: Book, escrow: str | None, amount: int, tokens: int) -> Draw | None:
    """What a hold of `amount` and `tokens` would take from the open hold `escrow`; None when no escrow is
    named or none is open under that id."""
    hold = book.holds.get(escrow) if escrow else None
    if hold is None or escrow is None:
        return None
    return Draw(escrow, hold, min(amount, hold.amount_micro_usd), min(tokens, hold.tokens))


def refusal(book: Book, req: Reserve, draw: Draw | None = None) -> str:
    """Why this reservation cannot be afforded, or '' when it can; what `draw` takes from an escrow hold
    needs no room in the tenant's budget."""
    if req.model:
        price = book.pricing.price(req.model)
        if price is None:
            return f"model {req.model!r} has no price: add it to MAESTRO_PRICING to use it"
        if price.free:
            return ""  # a local model costs nothing, whatever the budget
    f = book.fields
    ceiling = f["task_ceiling_micro_usd"]
    if ceiling is not None and req.estimate_micro_usd > ceiling and not req.for_workflow:
        return f"estimate {req.estimate_micro_usd} exceeds the per-task ceiling of {ceiling} micro-USD"
    drawn, drawn_tokens = (draw.micro_usd, draw.tokens) if draw else (0, 0)
    more, more_tokens = req.estimate_micro_usd - drawn, req.estimate_tokens - drawn_tokens
    of_escrow = f" after {drawn} drawn from escrow {draw.rid}" if draw else ""
    # A plain reservation is refused while the tenant is over, even one of nothing; a hold that its escrow
    # wholly covers takes no new money, so nothing of the tenant's refuses it.
    if draw is None or more:
        if f["spent_micro_usd"] > book.limit:
            return (
                f"over its limit: spent {f['spent_micro_usd']} > limit {book.limit} micro-USD; "
                "no new reservations until the window rolls over or the limit is raised"
            )
        if f["spent_micro_usd"] + f["held_micro_usd"] + more > book.limit:
            return (
                f"budget exceeded: spent {f['spent_micro_usd']} + held {f['held_micro_usd']} + estimate "
                f"{more}{of_escrow} > limit {book.limit} micro-USD"
            )
    limit_tokens = f["limit_tokens"]
    tokens_after = f["spent_tokens"] + f["held_tokens"] + more_tokens
    if limit_tokens is not None and (draw is None or more_tokens) and tokens_after > limit_tokens:
        return (
            f"token budget exceeded: spent {f['spent_tokens']} + held {f['held_tokens']} + estimate "
            f"{more_tokens}{of_escrow} > limit {limit_tokens} tokens"
        )
    for kind, name, limits in (
        ("role", req.role, f["role_limits"]),
        ("model", req.model, f["model_limits"]),
    ):
        limit = limits.get(name) if name else None
        if limit is not None:
            # The whole hold counts; what it draws from an escrow of the same scope only moves within it.
            moved = draw is not None and name == (draw.escrow.role if kind == "role" else draw.escrow.model)
            estimate = req.estimate_micro_usd - (drawn if moved else 0)
            tokens = req.estimate_tokens - (drawn_tokens if moved else 0)
            why = book.tallies.refusal(kind, name, limit, estimate, tokens)
            if why:
                return why
    return ""


def _granted(book: Book, req: Reserve, rid: str, held: int, reason: str = "", drawn: int = 0) -> Reservation:
    return Reservation(
        tenant=req.tenant,
        task_id=req.task_id,
        granted=True,
        reservation_id=rid,
        held_micro_usd=held,
        remaining_micro_usd=book.remaining,
        reason=reason,
        drawn_micro_usd=drawn,
    )
