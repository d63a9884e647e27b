"""`maestro approve|reject ID`: a human decides on a task awaiting approval; `maestro cancel ID` stops one;
`maestro ls` lists tasks or workflows, newest first."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from maestro import arguments, codec, listing
from maestro.client import Client, open_client
from maestro.errors import MaestroError, RemoteError
from maestro.listing import Page
from maestro.settings import Settings
from maestro.terminal import printable
from maestro.unavailable import UNAVAILABLE
from proto.v1 import TaskRecord
from proto.v1.workflows import WorkflowRecord


class LsError(MaestroError):
    """An `ls` option that cannot be used: one line for the user, exit 1 (maestro/cli.py prints it)."""


def register(sub: Any) -> None:
    """Add `approve`, `reject`, `cancel` and `ls` to the CLI's subparsers."""
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

    retry = sub.add_parser(
        "retry", help="run a task that waits for its next attempt now, not after its back-off"
    )
    retry.add_argument("id", type=arguments.task_id, help="the task id")
    retry.add_argument("--reason", default="", help="why (kept in the task's events)")
    retry.add_argument("--by", help="who asks (default: your user name)")
    retry.set_defaults(run=retry_task)

    ls = sub.add_parser(
        "ls",
        help="list tasks (or workflows), newest first",
        description="List task records (or workflow records with --workflows), newest first, passing every "
        "filter given. Options marked (repeatable) may be given several times.",
    )
    ls.add_argument("--tenant", type=arguments.tenant, help="only this tenant's")
    ls.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="STATE",
        help="only those in this state; several (repeatable, or comma-separated) mean any of them",
    )
    ls.add_argument(
        "--role", type=arguments.role, metavar="ROLE", help="only tasks of this role (or human:<queue>)"
    )
    ls.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only those carrying this label (repeatable: all of them)",
    )
    ls.add_argument(
        "--limit",
        type=arguments.positive,
        default=listing.DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N a page (default {listing.DEFAULT_LIMIT}, at most {listing.MAX_LIMIT})",
    )
    ls.add_argument("--all", action="store_true", help="every page, not only the first")
    ls.add_argument("--workflows", action="store_true", help="list workflows instead of tasks")
    ls.add_argument("--json", action="store_true", help="print each record as a JSON line")
    ls.set_defaults(run=list_records)


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


async def retry_task(settings: Settings, args: argparse.Namespace) -> int:
    """Hand the task's next attempt to its agents now."""
    async with open_client(settings) as client:
        event = await client.retry_now(args.id, by=args.by or arguments.user(), reason=args.reason)
    print(printable(f"retrying {event.task_id} now: attempt {event.attempt} ({event.error})"))
    return 0


Record = TaskRecord | WorkflowRecord
_COLUMNS = ("ID", "TENANT", "ROLE", "STATE", "CREATED", "COST", "WAITING FOR")


def _labels(given: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for label in given:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise LsError(f"--label {label!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


async def _page(client: Client, args: argparse.Namespace, cursor: str | None) -> Page[Record]:
    states = [s.strip() for joined in args.state for s in joined.split(",")]
    labels = _labels(args.label)
    if not args.workflows:
        tasks = await client.tasks(
            tenant=args.tenant, states=states, role=args.role, labels=labels, limit=args.limit, cursor=cursor
        )
        return Page(items=list[Record](tasks.items), next_cursor=tasks.next_cursor)
    if args.role is not None:
        raise LsError("--role: workflows have no role")
    workflows = await client.workflows(
        tenant=args.tenant, states=states, labels=labels, limit=args.limit, cursor=cursor
    )
    return Page(items=list[Record](workflows.items), next_cursor=workflows.next_cursor)


def _row(record: Record, waits: Mapping[str, str]) -> tuple[str, ...]:
    role = record.role if isinstance(record, TaskRecord) else None
    return (
        record.id,
        record.tenant,
        role or "-",
        record.state,
        record.created_at.isoformat(timespec="seconds"),
        f"${record.cost_micro_usd / 1_000_000:.6f}",
        waits.get(record.id, "-"),
    )


async def _waits(client: Client, records: Sequence[Record]) -> Mapping[str, str]:
    """Why the queued tasks among `records` wait for their turn, as the dispatcher says; while no orchestrator
    replica leads (one was killed a moment ago), that each waits for one to take the lead."""
    queued = [r.id for r in records if isinstance(r, TaskRecord) and r.state == "queued"]
    if not queued:
        return {}
    try:
        return await client.waits(queued)
    except RemoteError as exc:
        if exc.code != 503:
            raise
    except UNAVAILABLE:
        pass
    return dict.fromkeys(queued, "no dispatcher answers: an orchestrator replica takes the lead shortly")


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in (_COLUMNS, *rows)) for i in range(len(_COLUMNS))]
    for row in (_COLUMNS, *rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(printable(line.rstrip()))


async def list_records(settings: Settings, args: argparse.Namespace) -> int:
    """Print the records passing the filters, newest first: a table, or JSON lines with --json."""
    rows: list[tuple[str, ...]] = []
    cursor: str | None = None
    async with open_client(settings) as client:
        while True:
            page = await _page(client, args, cursor)
            waits = {} if args.json else await _waits(client, page.items)
            for record in page.items:
                if args.json:
                    print(codec.encode(record).decode(), flush=True)
                else:
                    rows.append(_row(record, waits))
            cursor = page.next_cursor
            if cursor is None or not args.all:
                break
    if not args.json:
        _table(rows)
    if cursor is not None:
        print(f"maestro: more than {args.limit}; --all lists them all", file=sys.stderr)
    return 0
