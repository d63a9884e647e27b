"""A tenant's budget ledger and the pure arithmetic on it: reserve, commit, release, view. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from maestro.settings import Settings
from proto.v1 import Commit, GetLedger, LedgerView, Release, Reservation, Reserve, Settlement, Usage

# How many settled reservation ids a ledger remembers. A commit or release repeated while its id is still
# here answers already_settled=True and changes nothing. A duplicate arriving after this many later
# settlements (hours late at any realistic rate, far past the duplicate window of every stream) finds
# neither a hold nor a settled id: it is answered the same way and charges nothing, so money is never
# counted twice; the price is that a commit whose hold was forgotten that long ago goes uncharged.
# The bound keeps the ledger, written whole on every change, small (about 30 bytes per id).
SETTLED_KEPT = 2048


class Hold(msgspec.Struct, frozen=True, array_like=True):
    """Money held for one task until it is committed, released, or expires (array-encoded: it is repeated)."""

    task_id: str
    amount_micro_usd: int
    expires_at: float
    """Epoch seconds after which the hold is dropped on the next touch."""


class Ledger(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's money, stored whole as one KV entry keyed by the tenant."""

    tenant: str
    limit_micro_usd: int
    spent_micro_usd: int = 0
    held_micro_usd: int = 0
    holds: dict[str, Hold] = {}
    settled: list[str] = []
    """Recently settled reservation ids, oldest first, at most SETTLED_KEPT."""

    @property
    def remaining_micro_usd(self) -> int:
        """What a new reservation may still hold; negative when usage overran its estimates."""
        return self.limit_micro_usd - self.spent_micro_usd - self.held_micro_usd


@dataclass(frozen=True)
class Charge:
    """A commit together with what its usage costs (priced by the caller, see `cost`)."""

    commit: Commit
    cost_micro_usd: int


Operation = Reserve | Charge | Release | GetLedger
Answer = Reservation | Settlement | LedgerView


def new_ledger(tenant: str, settings: Settings) -> Ledger:
    """An empty ledger with the default limit."""
    return Ledger(tenant=tenant, limit_micro_usd=settings.default_limit_micro_usd)


def reservation_id(task_id: str) -> str:
    """The one reservation id of a task, so reserving twice finds the first reservation."""
    return f"r-{task_id}"


def cost(usage: Usage, settings: Settings) -> int:
    """What a model call's usage costs, in micro-USD."""
    return (
        usage.input_tokens * settings.price_input_micro_usd_per_token
        + usage.output_tokens * settings.price_output_micro_usd_per_token
    )


class _Book:
    """A working copy of a ledger that a batch of operations mutates; the input ledger is never touched."""

    def __init__(self, ledger: Ledger, now: float) -> None:
        self.tenant = ledger.tenant
        self.limit = ledger.limit_micro_usd
        self.spent = ledger.spent_micro_usd
        self.held = ledger.held_micro_usd
        self.holds = dict(ledger.holds)
        self.settled = dict.fromkeys(ledger.settled)
        self.changed = False
        # Expired holds go first, once per batch: `now` is the same for every operation in it, and a hold
        # made in the batch expires after it. A commit may still charge a hold that expired just now.
        self.expired = {rid: hold for rid, hold in self.holds.items() if hold.expires_at <= now}
        for rid in self.expired:
            self._settle(rid)
        self.now = now

    @property
    def remaining(self) -> int:
        return self.limit - self.spent - self.held

    def _settle(self, rid: str) -> Hold:
        hold = self.holds.pop(rid)
        self.held -= hold.amount_micro_usd
        self.settled[rid] = None
        while len(self.settled) > SETTLED_KEPT:
            del self.settled[next(iter(self.settled))]
        self.changed = True
        return hold

    def reserve(self, req: Reserve) -> Reservation:
        rid = reservation_id(req.task_id)
        hold = self.holds.get(rid)
        if hold is not None:
            return self._granted(req, rid, hold.amount_micro_usd)
        if rid in self.settled:
            return self._granted(req, rid, 0, reason="already settled")
        if self.spent + self.held + req.estimate_micro_usd > self.limit:
            return Reservation(
                tenant=req.tenant,
                task_id=req.task_id,
                granted=False,
                remaining_micro_usd=self.remaining,
                reason=(
                    f"budget exceeded: spent {self.spent} + held {self.held} + estimate "
                    f"{req.estimate_micro_usd} > limit {self.limit} micro-USD"
                ),
            )
        self.holds[rid] = Hold(req.task_id, req.estimate_micro_usd, self.now + req.ttl_s)
        self.held += req.estimate_micro_usd
        self.changed = True
        return self._granted(req, rid, req.estimate_micro_usd)

    def _granted(self, req: Reserve, rid: str, held: int, reason: str = "") -> Reservation:
        return Reservation(
            tenant=req.tenant,
            task_id=req.task_id,
            granted=True,
            reservation_id=rid,
            held_micro_usd=held,
            remaining_micro_usd=self.remaining,
            reason=reason,
        )

    def commit(self, charge: Charge) -> Settlement:
        rid = charge.commit.reservation_id
        if rid in self.holds:
            hold = self._settle(rid)
        elif rid in self.expired:
            # Its hold expired on this very touch, yet the work was done: charge it (settled already).
            hold = self.expired.pop(rid)
            self.changed = True
        else:
            return self._already(charge.commit.tenant, rid)
        self.spent += charge.cost_micro_usd
        return Settlement(
            tenant=charge.commit.tenant,
            reservation_id=rid,
            charged_micro_usd=charge.cost_micro_usd,
            released_micro_usd=max(0, hold.amount_micro_usd - charge.cost_micro_usd),
            remaining_micro_usd=self.remaining,
        )

    def release(self, req: Release) -> Settlement:
        rid = req.reservation_id
        if rid not in self.holds:
            return self._already(req.tenant, rid)
        hold = self._settle(rid)
        return Settlement(
            tenant=req.tenant,
            reservation_id=rid,
            released_micro_usd=hold.amount_micro_usd,
            remaining_micro_usd=self.remaining,
        )

    def _already(self, tenant: str, rid: str) -> Settlement:
        return Settlement(
            tenant=tenant, reservation_id=rid, already_settled=True, remaining_micro_usd=self.remaining
        )

    def view(self) -> LedgerView:
        return LedgerView(
            tenant=self.tenant,
            limit_micro_usd=self.limit,
            spent_micro_usd=self.spent,
            held_micro_usd=self.held,
            remaining_micro_usd=self.remaining,
            holds=len(self.holds),
        )

    def answer(self, op: Operation) -> Answer:
        match op:
            case Reserve():
                return self.reserve(op)
            case Charge():
                return self.commit(op)
            case Release():
                return self.release(op)
            case GetLedger():
                return self.view()

    def ledger(self, original: Ledger) -> Ledger:
        if not self.changed:
            return original
        return Ledger(
            tenant=self.tenant,
            limit_micro_usd=self.limit,
            spent_micro_usd=self.spent,
            held_micro_usd=self.held,
            holds=self.holds,
            settled=list(self.settled),
        )


def apply(ledger: Ledger, operations: Sequence[Operation], now: float) -> tuple[Ledger, list[Answer], bool]:
    """Apply operations in order: the new ledger, one answer per operation, and whether anything changed.

    Copies the ledger once for the whole batch, which is what makes group commit cheap.
    """
    book = _Book(ledger, now)
    answers = [book.answer(op) for op in operations]
    return book.ledger(ledger), answers, book.changed


def reserve(ledger: Ledger, req: Reserve, now: float) -> tuple[Ledger, Reservation]:
    """Hold the estimate for a task, or refuse saying why; the same task id yields the same reservation."""
    book = _Book(ledger, now)
    answer = book.reserve(req)
    return book.ledger(ledger), answer


def commit(ledger: Ledger, req: Commit, cost_micro_usd: int, now: float) -> tuple[Ledger, Settlement]:
    """Charge a reservation what its usage cost and drop its hold; a repeat says already_settled."""
    book = _Book(ledger, now)
    answer = book.commit(Charge(req, cost_micro_usd))
    return book.ledger(ledger), answer


def release(ledger: Ledger, req: Release, now: float) -> tuple[Ledger, Settlement]:
    """Drop a reservation's hold without charging; a repeat says already_settled."""
    book = _Book(ledger, now)
    answer = book.release(req)
    return book.ledger(ledger), answer


def view(ledger: Ledger, now: float | None = None) -> LedgerView:
    """The ledger as anyone may read it (without holds past their expiry when `now` is given)."""
    book = _Book(ledger, now if now is not None else float("-inf"))
    return book.view()
