"""`maestro budget ...`: read (and later set) a tenant's ledger."""

from __future__ import annotations

import argparse
from typing import Any

from maestro.client import open_client
from maestro.settings import Settings


def register(sub: Any) -> None:
    """Add the `budget` command group to the CLI's subparsers."""
    budget = sub.add_parser("budget", help="budget ledgers")
    commands = budget.add_subparsers(dest="budget_command", required=True, metavar="SUBCOMMAND")
    show = commands.add_parser("show", help="show a tenant's ledger")
    show.add_argument("tenant")
    show.set_defaults(run=show_ledger)


async def show_ledger(settings: Settings, args: argparse.Namespace) -> int:
    """Print a tenant's limit, spent, held and remaining."""
    async with open_client(settings) as client:
        view = await client.ledger(args.tenant)
    for key, micros in (
        ("limit", view.limit_micro_usd),
        ("spent", view.spent_micro_usd),
        ("held", view.held_micro_usd),
        ("remaining", view.remaining_micro_usd),
    ):
        print(f"{key:<10} ${micros / 1_000_000:,.6f}")
    print(f"{'holds':<10} {view.holds}")
    return 0
