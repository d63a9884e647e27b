"""A tenant's budget ledger and the pure arithmetic on it: reserve, commit, release, set, view. No I/O.

The ledger is one KV entry per tenant holding its current window. It is written whole on every change, so
its size is bounded: at most MAX_HOLDS open holds (a reservation beyond that is backpressure, not a
refusal: the caller is told to retry once some settle), and as many remembered expired holds as the open
ones leave room for (an expired hold encodes smaller than the largest open one); SETTLED_KEPT settled ids
with what each charged (two 12-character strings each, 48 KB in all); MAX_SCOPES role and model tallies
(further models are counted under `other`). With 64-character task ids and model names, amounts of a
million USD and every bound reached, an entry measures about 800 KB (test_ledger.py builds it), under
NATS's 1 MiB payload limit; a typical busy entry is far smaller. A hold does not repeat its task id, which
its key spells: that is 64 bytes of each hold's ~180, and what makes room for the memory of expired holds.

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from maestro.settings import Settings
from proto.v1 import (
    BudgetEvents,
    Commit,
    GetLedger,
    HoldExpired,
    LateCommit,
    LedgerView,
    Overage,
    Release,
    Reservation,
    Reserve,
    SetBudget,
    Settlement,
    ThresholdCrossed,
    Usage,
    Window,
    WindowRolled,
    WindowTotals,
    reservation_id_for,
)
from services.budget import alerts, windows
from services.budget.expired import Expired, ExpiredHold
from services.budget.pricing import PriceTable
from services.budget.settled import Settled
from services.budget.tally import Limit, Tallies, Tally, scope_views

# How many settled reservation ids a ledger remembers, with what each charged. A commit or release repeated
# while its id is still here answers already_settled=True and changes nothing. A commit arriving after
# this many later settlements finds nothing it knows and is answered Unknown (404): money is never counted
# twice, and the caller learns that the commit was not charged.
SETTLED_KEPT = 2048
# Open holds per ledger: the bound on a hot tenant's entry (about 215 bytes each, encoded, with a
# 64-character task id). Expired holds are remembered in the room the open ones leave.
MAX_HOLDS = 4096
# How long a reserver is told to wait when the ledger holds MAX_HOLDS: every commit or release frees a
# place, and a busy tenant settles many per second.
BACKPRESSURE_RETRY_S = 1.0
# Role and model tallies per ledger, each a few dozen bytes.
MAX_SCOPES = 64


def task_of(rid: str) -> str:
    """The task a reservation id belongs to (the inverse of reservation_id_for), so holds need not say."""
    return rid.removeprefix(reservation_id_for(""))


class Hold(msgspec.Struct, frozen=True, array_like=True):
    """Money held for one task until it is committed, released, or expires (array-encoded: it is repeated)."""

    task_id: str
    """Empty: the reservation id spells it (task_of); entries before 0.4.0 repeated it here."""
    amount_micro_usd: int
    expires_at: float
    """Epoch seconds after which the hold is dropped on the next touch."""
    tokens: int = 0
    role: str = ""
    model: str = ""


class Ledger(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's money in its current window, with its limits, stored whole as one KV entry."""

    tenant: str
    limit_micro_usd: int
    spent_micro_usd: int = 0
    held_micro_usd: int = 0
    holds: dict[str, Hold] = {}
    settled: list[str] = []
    """Settled reservation ids as entries before 0.3.0 stored them; read, then moved to settled_ids."""
    settled_ids: str = ""
    """Fingerprints of recently settled reservation ids (services/budget/settled.py), at most SETTLED_KEPT."""
    settled_amounts: str = ""
    """What each of the newest settled ids charged, aligned with settled_ids from the end (settled.py)."""
    expired: dict[str, ExpiredHold] = {}
    """Recently expired holds by fingerprint, oldest first (expired.py); with the open ones, MAX_HOLDS."""
    window: Window = "total"
    window_id: str = "total"
    window_start: float = 0.0
    carried_micro_usd: int = 0
    """What the previous window left unspent (negative: overspent), when carry_over is set."""
    carry_over: bool = False
    limit_tokens: int | None = None
    spent_tokens: int = 0
    held_tokens: int = 0
    overage_micro_usd: int = 0
    task_ceiling_micro_usd: int | None = None
    role_limits: dict[str, Limit] = {}
    model_limits: dict[str, Limit] = {}
    roles: dict[str, Tally] = {}
    models: dict[str, Tally] = {}
    alerted: dict[str, int] = {}
    """The highest threshold announced this window, per limit (`tenant`, `role:planner:tokens`, ...)."""
    previous: WindowTotals | None = None

    @property
    def remaining_micro_usd(self) -> int:
        """What a new reservation may still hold; negative when usage overran its estimates."""
        return self.limit_micro_usd + self.carried_micro_usd - self.spent_micro_usd - self.held_micro_usd


@dataclass(frozen=True)
class Touch:
    """Touch a ledger and nothing else, so holds past their ttl expire (the sweeper's operation)."""

    tenant: str


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


@dataclass(frozen=True)
class Busy:
    """The answer to a reservation that does not fit for lack of room, not money: retry after a while."""

    reason: str
    retry_after_s: float


Operation = Reserve | Commit | Release | GetLedger | SetBudget | Touch
Answer = Reservation | Settlement | LedgerView | Unknown | Busy | None


@dataclass(frozen=True)
class Applied:
    """What a batch did: the new ledger, one answer per operation, whether it changed, and its events."""

    ledger: Ledger
    answers: list[Answer]
    changed: bool
    events: list[BudgetEvents]


def new_ledger(tenant: str, settings: Settings) -> Ledger:
    """An empty ledger with the default limit and the total window."""
    return Ledger(tenant=tenant, limit_micro_usd=settings.default_limit_micro_usd)


class _Book:
    """A working copy of a ledger that a batch of operations mutates; the input ledger is never touched."""

    def __init__(self, ledger: Ledger, now: float, pricing: PriceTable) -> None:
        self.original = ledger
        self.now = now
        self.at = datetime.fromtimestamp(now, UTC)
        self.pricing = pricing
        self.fields = msgspec.structs.asdict(ledger)
        f = self.fields
        self.holds: dict[str, Hold] = dict(ledger.holds)
        self.settled = Settled(ledger.settled_ids, ledger.settled_amounts, ledger.settled, SETTLED_KEPT)
        self.lapsed = Expired(ledger.expired)
        self.tallies = Tallies(ledger.roles, ledger.models, MAX_SCOPES)
        self.alerted = dict(ledger.alerted)
        self.events: list[BudgetEvents] = []
        self.changed = False
        span = windows.span(ledger.window, now)
        if span.start > ledger.window_start:
            self._roll(span)
        # Expired holds go first, once per batch: `now` is the same for every operation in it, and a hold
        # made in the batch expires after it. Those the batch does not commit are announced at its end.
        self.expired = {rid: hold for rid, hold in self.holds.items() if hold.expires_at <= now}
        for rid, hold in self.expired.items():
            self._drop(rid)
            self.lapsed.add(rid, ExpiredHold(hold.amount_micro_usd, hold.expires_at, hold.role, hold.model))
        self.tokens_before = f["spent_tokens"]

    # -- window and holds --------------------------------------------------------------------------
    def _roll(self, span: windows.Span) -> None:
        f = self.fields
        previous = WindowTotals(
            window_id=f["window_id"],
            limit_micro_usd=self.limit,
            spent_micro_usd=f["spent_micro_usd"],
            spent_tokens=f["spent_tokens"],
        )
        f["carried_micro_usd"] = self.limit - f["spent_micro_usd"] if f["carry_over"] else 0
        f.update(spent_micro_usd=0, spent_tokens=0, overage_micro_usd=0, previous=previous)
        f.update(window_id=span.id, window_start=span.start)
        self.tallies.new_window()
        self.alerted.clear()
        self.changed = True
        self.events.append(
            WindowRolled(
                tenant=f["tenant"],
                at=self.at,
                window_id=span.id,
                previous=previous,
                carried_micro_usd=f["carried_micro_usd"],
            )
        )

    @property
    def limit(self) -> int:
        return int(self.fields["limit_micro_usd"]) + int(self.fields["carried_micro_usd"])

    @property
    def remaining(self) -> int:
        return self.limit - int(self.fields["spent_micro_usd"]) - int(self.fields["held_micro_usd"])

    def _drop(self, rid: str) -> Hold:
        """Take an open hold off the books (the caller says what becomes of it)."""
        hold = self.holds.pop(rid)
        self.fields["held_micro_usd"] -= hold.amount_micro_usd
        self.fields["held_tokens"] -= hold.tokens
        self.tallies.hold(hold.role, hold.model, -hold.amount_micro_usd, -hold.tokens)
        self.changed = True
        return hold

    # -- operations ----------------------------------------------------------------------------------
    def reserve(self, req: Reserve) -> Reservation | Busy:
        rid = reservation_id_for(req.task_id)
        hold = self.holds.get(rid)
        if hold is not None:
            return self._granted(req, rid, hold.amount_micro_usd)
        if rid in self.settled:
            return self._granted(req, rid, 0, reason="already settled")
        if rid in self.lapsed:
            # The task had its hold; holding again would let a task renew its hold forever. Its commit is
            # charged as a late one.
            return self._granted(req, rid, 0, reason="hold expired")
        refusal = self._refusal(req)
        if refusal:
            return Reservation(
                tenant=req.tenant,
                task_id=req.task_id,
                granted=False,
                remaining_micro_usd=self.remaining,
                reason=refusal,
            )
        if len(self.holds) >= MAX_HOLDS:
            # Room, not money: the money checks above come first, so a task that cannot be afforded is
            # told so at once instead of being retried until it can.
            return Busy(
                f"tenant {req.tenant} has {MAX_HOLDS} open reservations, the most one ledger holds: "
                "retry once some are committed or released",
                BACKPRESSURE_RETRY_S,
            )
        price = self.pricing.price(req.model) if req.model else None
        free = price is not None and price.free
        amount, tokens = (0, 0) if free else (req.estimate_micro_usd, req.estimate_tokens)
        self.holds[rid] = Hold("", amount, self.now + req.ttl_s, tokens, req.role, req.model)
        self.fields["held_micro_usd"] += amount
        self.fields["held_tokens"] += tokens
        self.tallies.hold(req.role, req.model, amount, tokens)
        self.changed = True
        return self._granted(req, rid, amount)

    def _refusal(self, req: Reserve) -> str:
        """Why this reservation cannot be afforded, or '' when it can."""
        if req.model:
            price = self.pricing.price(req.model)
            if price is None:
                return f"model {req.model!r} has no price: add it to MAESTRO_PRICING to use it"
            if price.free:
                return ""  # a local model costs nothing, whatever the budget
        f = self.fields
        ceiling = f["task_ceiling_micro_usd"]
        if ceiling is not None and req.estimate_micro_usd > ceiling:
            return f"estimate {req.estimate_micro_usd} exceeds the per-task ceiling of {ceiling} micro-USD"
        if f["spent_micro_usd"] > self.limit:
            return (
                f"over its limit: spent {f['spent_micro_usd']} > limit {self.limit} micro-USD; "
                "no new reservations until the window rolls over or the limit is raised"
            )
        if f["spent_micro_usd"] + f["held_micro_usd"] + req.estimate_micro_usd > self.limit:
            return (
                f"budget exceeded: spent {f['spent_micro_usd']} + held {f['held_micro_usd']} + estimate "
                f"{req.estimate_micro_usd} > limit {self.limit} micro-USD"
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
                why = self.tallies.refusal(kind, name, limit, req.estimate_micro_usd, req.estimate_tokens)
                if why:
                    return why
        return ""

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

    def commit(self, req: Commit) -> Settlement | Unknown:
        rid = req.reservation_id
        if rid in self.holds:
            return self._charge(req, self._drop(rid))
        if rid in self.settled:
            return self._already(req.tenant, rid, self.settled.charged(rid))
        expired = self.lapsed.pop(rid)
        if expired is not None:
            self.expired.pop(rid, None)  # expired on this touch: the late commit is the one event
            return self._charge_late(req, expired)
        return Unknown(req.tenant, rid)

    def _cost(self, usage: Usage, held: int) -> tuple[int, str]:
        """The usage's price, or the hold's amount (and why) for a model without one."""
        cost = self.pricing.cost(usage)
        if cost is None:
            return held, f"model {usage.model!r} has no price: charged the hold"
        return cost, ""

    def _spend(self, req: Commit, role: str, model: str, cost: int) -> None:
        usage = req.usage
        tokens = usage.input_tokens + usage.output_tokens
        self.fields["spent_micro_usd"] += cost
        self.fields["spent_tokens"] += tokens
        self.tallies.spend(role, usage.model or model, cost, tokens)
        self.settled.add(req.reservation_id, cost)
        self.changed = True

    def _charge(self, req: Commit, hold: Hold) -> Settlement:
        cost, reason = self._cost(req.usage, hold.amount_micro_usd)
        self._spend(req, hold.role, hold.model, cost)
        f = self.fields
        overage = max(0, cost - hold.amount_micro_usd)
        if overage:
            f["overage_micro_usd"] += overage
            self.events.append(
                Overage(
                    tenant=req.tenant,
                    at=self.at,
                    window_id=f["window_id"],
                    reservation_id=req.reservation_id,
                    held_micro_usd=hold.amount_micro_usd,
                    charged_micro_usd=cost,
                    overage_micro_usd=overage,
                    remaining_micro_usd=self.remaining,
                )
            )
        return Settlement(
            tenant=req.tenant,
            reservation_id=req.reservation_id,
            charged_micro_usd=cost,
            released_micro_usd=max(0, hold.amount_micro_usd - cost),
            remaining_micro_usd=self.remaining,
            overage_micro_usd=overage,
            reason=reason,
        )

    def _charge_late(self, req: Commit, expired: ExpiredHold) -> Settlement:
        cost, priced = self._cost(req.usage, expired.amount_micro_usd)
        # Nothing is held for it any more: whatever of the charge the tenant's remaining money does not
        # cover is overage.
        overage = max(0, cost - max(0, self.remaining))
        self._spend(req, expired.role, expired.model, cost)
        f = self.fields
        f["overage_micro_usd"] += overage
        expired_at = datetime.fromtimestamp(expired.expired_at, UTC)
        self.events.append(
            LateCommit(
                tenant=req.tenant,
                at=self.at,
                window_id=f["window_id"],
                reservation_id=req.reservation_id,
                task_id=task_of(req.reservation_id),
                held_micro_usd=expired.amount_micro_usd,
                charged_micro_usd=cost,
                expired_at=expired_at,
                overage_micro_usd=overage,
                remaining_micro_usd=self.remaining,
            )
        )
        return Settlement(
            tenant=req.tenant,
            reservation_id=req.reservation_id,
            charged_micro_usd=cost,
            remaining_micro_usd=self.remaining,
            overage_micro_usd=overage,
            reason="; ".join(
                filter(None, [f"charged after its hold expired at {expired_at.isoformat()}", priced])
            ),
            late=True,
        )

    def release(self, req: Release) -> Settlement:
        rid = req.reservation_id
        if rid not in self.holds:
            return self._already(req.tenant, rid)
        hold = self._drop(rid)
        self.settled.add(rid)
        return Settlement(
            tenant=req.tenant,
            reservation_id=rid,
            released_micro_usd=hold.amount_micro_usd,
            remaining_micro_usd=self.remaining,
        )

    def _already(self, tenant: str, rid: str, charged: int = 0) -> Settlement:
        return Settlement(
            tenant=tenant,
            reservation_id=rid,
            charged_micro_usd=charged,
            already_settled=True,
            remaining_micro_usd=self.remaining,
        )

    def configure(self, req: SetBudget) -> LedgerView:
        f = self.fields
        if req.scope == "tenant":
            if req.remove:
                f.update(limit_tokens=None, task_ceiling_micro_usd=None)
            if req.limit_micro_usd is not None:
                f["limit_micro_usd"] = req.limit_micro_usd
            if req.limit_tokens is not None:
                f["limit_tokens"] = req.limit_tokens
            if req.task_ceiling_micro_usd is not None:
                f["task_ceiling_micro_usd"] = req.task_ceiling_micro_usd
            if req.carry_over is not None:
                f["carry_over"] = req.carry_over
            if req.window is not None and req.window != f["window"]:
                # The spend so far stays; the new kind of window starts where `now` falls in it.
                span = windows.span(req.window, self.now)
                f.update(window=req.window, window_id=span.id, window_start=span.start)
        else:
            key = "role_limits" if req.scope == "role" else "model_limits"
            limits = dict(f[key])
            if req.remove:
                limits.pop(req.name, None)
            elif req.limit_micro_usd is not None or req.limit_tokens is not None:
                old = limits.get(req.name, Limit())
                limits[req.name] = Limit(
                    req.limit_micro_usd if req.limit_micro_usd is not None else old.micro_usd,
                    req.limit_tokens if req.limit_tokens is not None else old.tokens,
                )
            f[key] = limits
        self.changed = True
        return self.view()

    def view(self) -> LedgerView:
        f = self.fields
        return LedgerView(
            tenant=f["tenant"],
            limit_micro_usd=f["limit_micro_usd"],
            spent_micro_usd=f["spent_micro_usd"],
            held_micro_usd=f["held_micro_usd"],
            remaining_micro_usd=self.remaining,
            holds=len(self.holds),
            window=f["window"],
            window_id=f["window_id"],
            window_ends_at=windows.ends_at(f["window"], f["window_id"]),
            carried_micro_usd=f["carried_micro_usd"],
            limit_tokens=f["limit_tokens"],
            spent_tokens=f["spent_tokens"],
            held_tokens=f["held_tokens"],
            overage_micro_usd=f["overage_micro_usd"],
            task_ceiling_micro_usd=f["task_ceiling_micro_usd"],
            carry_over=f["carry_over"],
            roles=scope_views(self.tallies.roles, f["role_limits"]),
            models=scope_views(self.tallies.models, f["model_limits"]),
            previous=f["previous"],
        )

    def answer(self, op: Operation) -> Answer:
        match op:
            case Reserve():
                return self.reserve(op)
            case Commit():
                return self.commit(op)
            case Release():
                return self.release(op)
            case GetLedger():
                return self.view()
            case SetBudget():
                return self.configure(op)
            case Touch():
                return None

    # -- the end of a batch ------------------------------------------------------------------------------
    def finish(self) -> None:
        """Announce the holds that expired uncommitted, and the thresholds crossed."""
        f = self.fields
        for rid, hold in self.expired.items():
            self.events.append(
                HoldExpired(
                    tenant=f["tenant"],
                    at=self.at,
                    window_id=f["window_id"],
                    reservation_id=rid,
                    task_id=hold.task_id or task_of(rid),
                    released_micro_usd=hold.amount_micro_usd,
                    expired_at=datetime.fromtimestamp(hold.expires_at, UTC),
                )
            )
        limits = [("tenant", f["spent_micro_usd"], self.limit)]
        if f["limit_tokens"] is not None:
            limits.append(("tenant:tokens", f["spent_tokens"], f["limit_tokens"]))
        limits += self.tallies.spent_against("role", f["role_limits"])
        limits += self.tallies.spent_against("model", f["model_limits"])
        for scope, spent, limit in limits:
            for pct in alerts.crossed(spent, limit, self.alerted.get(scope, 0)):
                self.alerted[scope] = pct
                self.changed = True
                self.events.append(
                    ThresholdCrossed(
                        tenant=f["tenant"],
                        at=self.at,
                        window_id=f["window_id"],
                        scope=scope,
                        percent=pct,
                        spent=spent,
                        limit=limit,
                    )
                )

    def ledger(self) -> Ledger:
        if not self.changed:
            return self.original
        roles, models = self.tallies.frozen()
        settled_ids, settled_amounts = self.settled.stored()
        self.fields.update(
            holds=self.holds,
            settled=[],
            settled_ids=settled_ids,
            settled_amounts=settled_amounts,
            expired=self.lapsed.stored(MAX_HOLDS - len(self.holds)),
            roles=roles,
            models=models,
            alerted=self.alerted,
        )
        return Ledger(**self.fields)


def apply(ledger: Ledger, operations: Sequence[Operation], now: float, pricing: PriceTable) -> Applied:
    """Apply operations in order at `now` (epoch seconds): rolls the window over and expires holds first.

    Copies the ledger once for the whole batch, which is what makes group commit cheap.
    """
    book = _Book(ledger, now, pricing)
    answers = [book.answer(op) for op in operations]
    book.finish()
    return Applied(book.ledger(), answers, book.changed, book.events)
