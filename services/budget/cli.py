"""`maestro budget show|set|history`: read a tenant's ledger, change its limits through the budget service, or
read its spend over time and the alerts that fired.

`set` goes through the budget's `set` endpoint rather than writing KV itself: the change is then one
compare-and-set on the tenant's ledger, ordered with every reservation (no reservation is judged against
half a change), validated by the one service that owns the format, and the CLI needs no KV access.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from maestro import arguments
from maestro.client import open_client
from maestro.settings import Settings
from maestro.since import parse_since
from proto.v1 import (
    ROLES,
    BudgetAlerts,
    BudgetHistory,
    HoldExpired,
    LateCommit,
    LedgerRecreated,
    LedgerView,
    Overage,
    ScopeView,
    SetBudget,
    ThresholdCrossed,
    WindowRolled,
)
from proto.v1.ids import MAX_MICRO_USD, MAX_TOKENS, MODEL_PATTERN
from services.budget.windows import WINDOWS


def register(sub: Any) -> None:
    """Add the `budget` command group to the CLI's subparsers."""
    budget = sub.add_parser("budget", help="budget ledgers")
    commands = budget.add_subparsers(dest="budget_command", required=True, metavar="SUBCOMMAND")
    show = commands.add_parser("show", help="show a tenant's ledger, per role and model too")
    show.add_argument("tenant", type=arguments.tenant)
    show.set_defaults(run=show_ledger)

    change = commands.add_parser(
        "set",
        help="change a tenant's budget, or a role's or model's sub-limit (effective immediately)",
        description="Fields not given stay as they are. With --role or --model, --usd and --tokens set "
        "that role's or model's sub-limit instead of the tenant's.",
    )
    change.add_argument("tenant", type=arguments.tenant)
    change.add_argument("--usd", type=_micro_usd, metavar="USD", help="limit in USD per window")
    change.add_argument("--tokens", type=_count, metavar="N", help="limit in tokens per window")
    change.add_argument("--window", choices=WINDOWS, help="daily (00:00 UTC), monthly (the 1st) or total")
    scope = change.add_mutually_exclusive_group()
    scope.add_argument("--role", choices=ROLES, help="set this role's sub-limit")
    scope.add_argument("--model", type=_model, help="set this model's sub-limit")
    change.add_argument("--task-ceiling-usd", type=_micro_usd, metavar="USD", help="most one task may hold")
    carry = change.add_mutually_exclusive_group()
    carry.add_argument("--carry-over", dest="carry_over", action="store_true", default=None)
    carry.add_argument("--no-carry-over", dest="carry_over", action="store_false")
    change.add_argument(
        "--remove",
        action="store_true",
        help="drop the role's or model's sub-limits (or the tenant's token limit and task ceiling)",
    )
    change.set_defaults(run=set_budget)

    history = commands.add_parser(
        "history",
        help="a tenant's spend over time and the budget alerts that fired",
        description="The budget's spend samples (the last of each of 240 steps of the range) and every "
        "budget alert (thresholds crossed, overages, expired holds, new windows), oldest first.",
    )
    history.add_argument("tenant", type=arguments.tenant)
    history.add_argument(
        "--since",
        type=_since,
        default=None,
        metavar="WHEN",
        help="an ISO 8601 time with its zone, or how long ago: 30m, 1h, 7d (default 24h; at most 7d)",
    )
    history.set_defaults(run=show_history)


def _micro_usd(text: str) -> int:
    try:
        usd = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount of USD: {text[:40]!r}") from None
    if not usd.is_finite() or usd < 0:
        raise argparse.ArgumentTypeError(f"not an amount of USD: {text[:40]!r}")
    if usd * 1_000_000 > MAX_MICRO_USD:
        raise argparse.ArgumentTypeError(f"at most {MAX_MICRO_USD // 1_000_000:,} USD")
    return int(usd * 1_000_000)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text[:40]!r}") from None
    if not 0 <= value <= MAX_TOKENS:
        raise argparse.ArgumentTypeError(f"not a count of at most {MAX_TOKENS:,}: {text[:40]!r}")
    return value


def _model(text: str) -> str:
    if not re.fullmatch(MODEL_PATTERN.removeprefix("^").removesuffix("$"), text):
        raise argparse.ArgumentTypeError(
            f"not a model id (at most 128 of A-Z a-z 0-9 . _ : / @ + -): {text[:40]!r}"
        )
    return text


def _since(text: str) -> str:
    try:
        parse_since(text, datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _usd(micros: int | None) -> str:
    return "-" if micros is None else f"${micros / 1_000_000:,.6f}"


def describe(view: LedgerView) -> list[str]:
    """The lines `budget show` prints."""
    ends = view.window_ends_at.isoformat() if view.window_ends_at else "never"
    lines = [f"{'window':<10} {view.window} {view.window_id} (ends {ends})"]
    for key, micros in (
        ("limit", view.limit_micro_usd),
        ("carried", view.carried_micro_usd),
        ("spent", view.spent_micro_usd),
        ("held", view.held_micro_usd),
        ("remaining", view.remaining_micro_usd),
        ("overage", view.overage_micro_usd),
        ("ceiling", view.task_ceiling_micro_usd),
    ):
        if key in ("limit", "spent", "held", "remaining") or micros:
            lines.append(f"{key:<10} {_usd(micros)}")
    if view.limit_tokens is not None or view.spent_tokens or view.held_tokens:
        limit = "-" if view.limit_tokens is None else f"{view.limit_tokens:,}"
        lines.append(f"{'tokens':<10} spent {view.spent_tokens:,} held {view.held_tokens:,} limit {limit}")
    lines.append(f"{'holds':<10} {view.holds}")
    if view.previous is not None:
        p = view.previous
        spent, limit = _usd(p.spent_micro_usd), _usd(p.limit_micro_usd)
        lines.append(f"{'previous':<10} {p.window_id}: spent {spent} of {limit}")
    for kind, scopes in (("role", view.roles), ("model", view.models)):
        if scopes:
            header = f"{'spent':>16} {'held':>16} {'limit':>16} {'tokens':>12} {'tok limit':>12}"
            lines.append(f"{kind:<20} {header}")
            lines.extend(_scope_line(name, scope) for name, scope in scopes.items())
    return lines


def _scope_line(name: str, scope: ScopeView) -> str:
    tokens = "-" if scope.limit_tokens is None else f"{scope.limit_tokens:,}"
    return (
        f"{name:<20} {_usd(scope.spent_micro_usd):>16} {_usd(scope.held_micro_usd):>16} "
        f"{_usd(scope.limit_micro_usd):>16} {scope.spent_tokens:>12,} {tokens:>12}"
    )


async def show_ledger(settings: Settings, args: argparse.Namespace) -> int:
    """Print a tenant's window, limit, spent, held and remaining, per role and model too."""
    async with open_client(settings) as client:
        view = await client.ledger(args.tenant)
    print("\n".join(describe(view)))
    return 0


async def set_budget(settings: Settings, args: argparse.Namespace) -> int:
    """Change a tenant's budget through the budget service and print the ledger as it now is."""
    scope: Literal["tenant", "role", "model"] = "role" if args.role else "model" if args.model else "tenant"
    change = SetBudget(
        tenant=args.tenant,
        scope=scope,
        name=args.role or args.model or "",
        limit_micro_usd=args.usd,
        limit_tokens=args.tokens,
        remove=args.remove,
        window=args.window,
        task_ceiling_micro_usd=args.task_ceiling_usd,
        carry_over=args.carry_over,
    )
    async with open_client(settings) as client:
        view = await client.set_budget(change)
    print("\n".join(describe(view)))
    return 0


def _alert(alert: BudgetAlerts) -> str:
    match alert:
        case ThresholdCrossed():
            return f"{alert.scope} reached {alert.percent}% ({alert.spent:,} of {alert.limit:,})"
        case Overage():
            return f"{alert.reservation_id} charged {_usd(alert.overage_micro_usd)} past its hold"
        case HoldExpired():
            return f"{alert.reservation_id} expired, {_usd(alert.released_micro_usd)} released"
        case WindowRolled():
            previous = alert.previous
            return f"{previous.window_id} closed: spent {_usd(previous.spent_micro_usd)}"
        case LateCommit():
            return f"{alert.reservation_id} committed late: {_usd(alert.charged_micro_usd)}"
        case LedgerRecreated():
            return f"ledger started afresh ({alert.removed_by} at revision {alert.removed_revision})"


def describe_history(history: BudgetHistory) -> list[str]:
    """The lines `budget history` prints."""
    step = f"{history.step_s:g}s"
    lines = [f"{history.tenant} since {history.since.isoformat()}, the last sample of each {step} step"]
    if history.partial:
        lines.append("partial: the range held more events than one read takes; the newest are not here")
    lines.append(f"{'at':<25} {'window':<10} {'spent':>16} {'held':>16} {'remaining':>16} {'limit':>16}")
    for s in history.samples:
        lines.append(
            f"{s.at.isoformat(timespec='seconds'):<25} {s.window_id:<10} {_usd(s.spent_micro_usd):>16} "
            f"{_usd(s.held_micro_usd):>16} {_usd(s.remaining_micro_usd):>16} {_usd(s.limit_micro_usd):>16}"
        )
    lines.append(f"alerts: {len(history.alerts)}")
    for alert in history.alerts:
        kind = alert.__struct_config__.tag
        lines.append(f"{alert.at.isoformat(timespec='seconds'):<25} {kind:<22} {_alert(alert)}")
    return lines


async def show_history(settings: Settings, args: argparse.Namespace) -> int:
    """Print a tenant's spend samples and budget alerts since a time."""
    async with open_client(settings) as client:
        history = await client.budget_history(args.tenant, args.since)
    print("\n".join(describe_history(history)))
    return 0
