"""`maestro approve|reject ID`: a human decides on a task awaiting approval; `maestro cancel ID` stops one."""

from __future__ import annotations

import argparse
from typing import Any

from maestro import arguments
from maestro.client import open_client
from maestro.settings import Settings
from maestro.terminal import printable


def register(sub: Any) -> None:
    """Add `approve`, `reject` and `cancel` to the CLI's subparsers."""
    approve = sub.add_parser("approve", help="approve a task awaiting approval")
    approve.add_argument("id", type=arguments.task_id, help="the task id")
    approve.add_argument("--by", help="who approves (default: your user name)")
    approve.add_argument("--reason", default="", help="why (kept in the task's events)")
    approve.set_defaults(run=approve_task)

    reject = sub.add_parser("reject", help="reject a task awaiting approval")
    reject.add_argument("id", type=arguments.task_id, help="the task id")
    reject.add_argument("--reason", required=True, help="why (kept in the task's events)")
    reject.add_argument("--by", help="who rejects (default: your user name)")
    reject.set_defaults(run=reject_task)

    cancel = sub.add_parser("cancel", help="cancel a task that has not ended (a running one is stopped)")
    cancel.add_argument("id", type=arguments.task_id, help="the task id")
    cancel.add_argument("--reason", default="", help="why (kept in the task's events)")
    cancel.add_argument("--by", help="who cancels (default: your user name)")
    cancel.set_defaults(run=cancel_task)


async def approve_task(settings: Settings, args: argparse.Namespace) -> int:
    """Approve the task; the guard reserves its budget and queues it."""
    async with open_client(settings) as client:
        decision = await client.approve(args.id, by=args.by or arguments.user(), reason=args.reason)
    print(printable(f"approved {decision.task_id} (by {decision.by})"))
    return 0


async def reject_task(settings: Settings, args: argparse.Namespace) -> int:
    """Reject the task; it ends rejected with the reason."""
    async with open_client(settings) as client:
        decision = await client.reject(args.id, by=args.by or arguments.user(), reason=args.reason)
    print(printable(f"rejected {decision.task_id} (by {decision.by}): {decision.reason}"))
    return 0


async def cancel_task(settings: Settings, args: argparse.Namespace) -> int:
    """Cancel the task; it ends cancelled, its hold released, its worker (if any) stopping it."""
    async with open_client(settings) as client:
        event = await client.cancel(args.id, by=args.by or arguments.user(), reason=args.reason)
    print(
        printable(
            f"cancelled {event.task_id} (by {event.by})" + (f": {event.reason}" if event.reason else "")
        )
    )
    return 0
