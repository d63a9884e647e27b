"""Budget service messages: reserve before spending, commit what was spent, release the rest."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import (
    END,
    MAX_MICRO_USD,
    MODEL_PATTERN,
    ROLES,
    TOKEN_PATTERN,
    MicroUsd,
    ModelName,
    TaskId,
    Tenant,
    Tokens,
)


def _whole(body: str) -> str:
    """A pattern matching `body` and nothing more: Python's `$` (which msgspec uses) also matches before a
    final newline, so the end is asserted to be no newline, which JSON Schema's regexes read the same."""
    return f"^({body.removeprefix('^').removesuffix(END).removesuffix('$')}){END}"


MAX_TTL_S = 30 * 86_400.0
"""The longest a hold may live uncommitted: longer than any task runs, short enough to be sure it ends."""
MAX_ATTEMPT = 20
"""The last attempt a task can have: proto/v1/tasks.py's MAX_ATTEMPTS (that module imports this one)."""
Attempt = Annotated[
    int, Meta(ge=1, le=MAX_ATTEMPT, description="which attempt of the task: 1, then one more per retry")
]
# Attempt 1 has no suffix (its id is what it was before retries), attempts 2 to MAX_ATTEMPT have `.<n>`:
# one id per attempt, and none that two attempts could share (`r-t1.1` and `r-t1.02` are not ids).
_ATTEMPT_SUFFIX = r"(\.([2-9]|1[0-9]|20))?"
MAX_RESERVATION_ID = len("r-") + 64 + len(f".{MAX_ATTEMPT}")
"""The longest reservation id: the longest task id (proto/v1/ids.py) at its last attempt."""
ReservationId = Annotated[
    str,
    Meta(
        pattern=_whole("r-" + TOKEN_PATTERN.removeprefix("^").removesuffix(END) + _ATTEMPT_SUFFIX),
        max_length=MAX_RESERVATION_ID,
        description="one attempt's reservation: `r-<task id>`, `r-<task id>.<attempt>` after the first "
        "(reservation_id_for)",
    ),
]
RoleScope = Annotated[
    str,
    Meta(pattern=_whole(f"({'|'.join(ROLES)})?"), description="one of the roles, or empty for none"),
]
ModelScope = Annotated[
    str,
    Meta(
        pattern=_whole(f"({MODEL_PATTERN.removeprefix('^').removesuffix('$')})?"),
        max_length=128,
        description="a model id (at most 128 characters), or empty for none",
    ),
]
Balance = Annotated[
    int,
    Meta(
        ge=-3 * MAX_MICRO_USD,
        le=MAX_MICRO_USD,
        description="micro-USD a limit leaves after what was spent and held: negative when usage overran it",
    ),
]
Carried = Annotated[
    int,
    Meta(
        ge=-MAX_MICRO_USD,
        le=MAX_MICRO_USD,
        description="micro-USD a window left the next (negative: overspent), capped at the bound on money",
    ),
]
Amount = Annotated[
    int,
    Meta(ge=-MAX_MICRO_USD, le=MAX_MICRO_USD, description="micro-USD, or tokens for a token limit"),
]


class Usage(Message, frozen=True):
    """What a model call actually consumed.

    A usage whose price is past the bound on money, or that would take the window's spent money or tokens
    past their bounds, is refused with 400 and charges nothing: no real call costs a billion USD.
    """

    model: ModelName
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0


class Reserve(Message, frozen=True):
    """Hold an estimated amount for one attempt of a task; the same task and attempt find the same hold.

    Each attempt (a retry is the next one) holds under its own reservation id, apart from the others.

    A reservation that would take the tenant's held money or tokens past their bounds is refused with 400.
    """

    tenant: Tenant
    task_id: TaskId
    estimate_micro_usd: MicroUsd
    estimate_tokens: Tokens = 0
    ttl_s: Annotated[float, Meta(gt=0, le=MAX_TTL_S)] = 3600.0
    role: RoleScope = ""
    """The task's role, held against the role's sub-limit when the tenant has one."""
    model: ModelScope = ""
    """The model the task will call: priced at 0 it needs no budget, without a price it is refused."""
    attempt: Attempt = 1
    """The attempt the hold pays for: each attempt of a task holds, and is charged, apart from the others."""
    for_workflow: bool = False
    """This is a workflow's escrow (its whole estimate, held before its first step): the per-task ceiling
    does not apply to it (it applies to each step's hold), the tenant's limits do."""
    escrow: ReservationId | None = None
    """The workflow's escrow hold to draw from (`reservation_id_for("<workflow id>--escrow")`): the hold's
    money and tokens come from it first, and only what it cannot cover from the tenant's free budget. An
    id naming no open hold of the tenant (unknown, settled, expired) is ignored: the reservation is a plain
    one. The per-task ceiling and the role's and model's sub-limits apply to the whole hold. What was drawn
    is the step's: its release gives it back to the tenant's free budget, not to the escrow."""


class Reservation(Message, frozen=True):
    """The answer to Reserve: granted with a reservation id, or refused with why."""

    tenant: Tenant
    task_id: TaskId
    granted: bool
    reservation_id: Annotated[str, Meta(max_length=MAX_RESERVATION_ID)] = ""
    """Empty when not granted."""
    held_micro_usd: MicroUsd = 0
    remaining_micro_usd: Balance = 0
    reason: str = ""
    drawn_micro_usd: MicroUsd = 0
    """How much of held_micro_usd was taken from the escrow hold named by Reserve.escrow (the rest came
    from the tenant's free budget); the same on every answer for the hold."""


class Commit(Message, frozen=True):
    """Charge a reservation with what was actually used; the hold is released."""

    tenant: Tenant
    reservation_id: ReservationId
    usage: Usage


def reservation_id_for(task_id: str, attempt: int = 1) -> str:
    """The one reservation an attempt of a task can have: reserving twice finds the first, and anyone
    holding the task id and attempt (a guard whose request was dead-lettered, say) can release it."""
    return f"r-{task_id}" if attempt == 1 else f"r-{task_id}.{attempt}"


def task_of_reservation(reservation_id: str) -> str:
    """The task a reservation id belongs to, whichever attempt it holds for (reservation_id_for's inverse)."""
    return reservation_id.removeprefix("r-").partition(".")[0]  # a task id has no dots


class Release(Message, frozen=True):
    """Give a reservation's hold back without charging anything."""

    tenant: Tenant
    reservation_id: ReservationId


class Settlement(Message, frozen=True):
    """The answer to Commit or Release; `already_settled` means this call changed nothing.

    A commit repeated after the reservation was settled answers already_settled with what the first
    commit charged (0 after a release). A commit for a reservation the budget does not know (never held,
    or settled or expired too long ago to be remembered) is not a Settlement: it is refused with error 404.
    """

    tenant: Tenant
    reservation_id: ReservationId
    charged_micro_usd: MicroUsd = 0
    """What the reservation was charged: by this commit, or (already_settled) by the first one."""
    released_micro_usd: MicroUsd = 0
    already_settled: bool = False
    remaining_micro_usd: Balance = 0
    overage_micro_usd: MicroUsd = 0
    """How much the charge went beyond the hold (charged anyway: the money is gone); for a late commit,
    how much of it the tenant's remaining budget could not cover."""
    reason: str = ""
    late: bool = False
    """The hold had expired (its money given back) before this commit came: charged anyway, and announced
    as budget.late_commit."""


Window = Literal["daily", "monthly", "total"]
"""A budget window aligned to the UTC calendar: daily resets at 00:00, monthly on the 1st, total never."""


class ScopeView(Message, frozen=True):
    """One role's or model's share of a tenant's window, with its own limits where set."""

    spent_micro_usd: MicroUsd = 0
    held_micro_usd: MicroUsd = 0
    spent_tokens: Tokens = 0
    held_tokens: Tokens = 0
    limit_micro_usd: MicroUsd | None = None
    limit_tokens: Tokens | None = None


class WindowTotals(Message, frozen=True):
    """What a closed window ended with."""

    window_id: str
    limit_micro_usd: Amount
    """The limit with what was carried into the window, at most the bound on money."""
    spent_micro_usd: MicroUsd
    spent_tokens: Tokens = 0


class GetLedger(Message, frozen=True):
    """Ask for a tenant's ledger."""

    tenant: Tenant


class LedgerView(Message, frozen=True):
    """A tenant's ledger as anyone may read it."""

    tenant: Tenant
    limit_micro_usd: MicroUsd
    spent_micro_usd: MicroUsd
    held_micro_usd: MicroUsd
    remaining_micro_usd: Balance
    holds: int = 0
    window: Window = "total"
    window_id: str = "total"
    window_ends_at: datetime | None = None
    """When the window rolls over (UTC); none for the total window."""
    carried_micro_usd: Carried = 0
    limit_tokens: Tokens | None = None
    spent_tokens: Tokens = 0
    held_tokens: Tokens = 0
    overage_micro_usd: MicroUsd = 0
    task_ceiling_micro_usd: MicroUsd | None = None
    carry_over: bool = False
    roles: dict[str, ScopeView] = {}
    """Per-role totals, and limits where set."""
    models: dict[str, ScopeView] = {}
    """Per-model totals, and limits where set."""
    previous: WindowTotals | None = None
    """The window before this one, as it closed."""


class SetBudget(Message, frozen=True):
    """Change a tenant's budget (or one role's or model's sub-limit); fields left out stay as they are."""

    tenant: Tenant
    scope: Literal["tenant", "role", "model"] = "tenant"
    name: ModelScope = ""
    """The role or model a sub-limit applies to (scope role or model): a role must be one of ROLES, and a
    ledger keeps at most 64 model sub-limits (a 65th is refused with 400: remove one first)."""
    limit_micro_usd: MicroUsd | None = None
    limit_tokens: Tokens | None = None
    remove: bool = False
    """Drop the role's or model's sub-limits, or (scope tenant) the tenant's token limit and ceiling."""
    window: Window | None = None
    task_ceiling_micro_usd: MicroUsd | None = None
    carry_over: bool | None = None
    """Whether what a window leaves unspent (or overspent) moves to the next one."""


class BudgetEvent(Message, frozen=True, tag_field="kind"):
    """Something that happened to a tenant's budget, on maestro.v1.budgetevt.<tenant>."""

    tenant: Tenant
    at: datetime
    window_id: str


class HoldExpired(BudgetEvent, frozen=True, tag="budget.hold_expired"):
    """A reservation was neither committed nor released within its ttl: its hold was given back."""

    reservation_id: ReservationId
    task_id: TaskId
    released_micro_usd: MicroUsd
    expired_at: datetime


class ThresholdCrossed(BudgetEvent, frozen=True, tag="budget.threshold"):
    """Spending in a window crossed 50, 80 or 100 percent of a limit (once per window and limit)."""

    scope: str
    """`tenant`, `role:<name>` or `model:<name>`, with `:tokens` for a token limit."""
    percent: int
    spent: Amount
    limit: Amount


class Overage(BudgetEvent, frozen=True, tag="budget.overage"):
    """A commit charged more than its hold; new reservations are refused while the tenant is over.

    A late commit reports its overage in its LateCommit event instead."""

    reservation_id: ReservationId
    held_micro_usd: MicroUsd
    charged_micro_usd: MicroUsd
    overage_micro_usd: MicroUsd
    remaining_micro_usd: Balance


class WindowRolled(BudgetEvent, frozen=True, tag="budget.window_rolled"):
    """A new window began; `previous` is how the last one closed."""

    previous: WindowTotals
    carried_micro_usd: Carried = 0


class LateCommit(BudgetEvent, frozen=True, tag="budget.late_commit"):
    """A commit came after its hold had expired: the usage was charged all the same."""

    reservation_id: ReservationId
    task_id: TaskId
    held_micro_usd: MicroUsd
    """What the hold held before it expired (and was given back)."""
    charged_micro_usd: MicroUsd
    expired_at: datetime
    overage_micro_usd: MicroUsd = 0
    """How much of the charge the tenant's remaining budget could not cover (charged anyway)."""
    remaining_micro_usd: Balance = 0


class LedgerRecreated(BudgetEvent, frozen=True, tag="budget.ledger_recreated"):
    """The tenant's ledger had been deleted or purged from the bucket by hand: it started afresh, with the
    default limit, and what it held and spent is gone (commits for its reservations are answered 404)."""

    removed_by: Literal["DEL", "PURGE"] = "DEL"
    removed_revision: int = 0
    """The revision of the delete or purge marker the fresh ledger was written over."""


class SpendSampled(BudgetEvent, frozen=True, tag="budget.sampled"):
    """A tenant's window as a budget replica read it, every MAESTRO_BUDGET_SAMPLE_S while its ledger changes
    (none while it does not): the console's chart of spend over time. One per tenant, window and interval,
    however many replicas sampled it."""

    spent_micro_usd: MicroUsd
    held_micro_usd: MicroUsd
    limit_micro_usd: Amount
    """The window's limit with what the previous window carried into it."""
    remaining_micro_usd: Balance
    """What new reservations may still hold: limit - spent - held (negative when usage overran it)."""
    spent_tokens: Tokens = 0
    held_tokens: Tokens = 0
    interval_s: Annotated[float, Meta(gt=0)] = 60.0
    """How often the replica samples: this sample stands for the interval `at` falls in."""


BudgetAlerts = HoldExpired | ThresholdCrossed | Overage | WindowRolled | LateCommit | LedgerRecreated
"""The budget events that say something happened (every kind but the spend samples)."""
BudgetEvents = BudgetAlerts | SpendSampled


class BudgetHistory(Message, frozen=True):
    """GET /v1/budgets/{tenant}/history: a tenant's spend over time and the budget alerts that fired, from
    `since` until now, every field always present."""

    tenant: Tenant
    since: datetime
    """The start of the range (UTC); it ends now."""
    step_s: float
    """The range is cut in steps this long from `since` (the range / 240): `samples` keeps the last sample of
    each step that has one, the spend as that step ended."""
    samples: list[SpendSampled]
    """Oldest first; none for a step in which the ledger did not change (it stood as the sample before)."""
    alerts: list[BudgetAlerts]
    """Every other budget event in the range (thresholds crossed, overages, holds expired, new windows, late
    commits, ledgers recreated), oldest first."""
    partial: bool
    """True when the range held more events than one answer reads: the oldest are here, the newest not."""
