"""The `maestro` command: up, submit, status, watch, budget show, smoke; errors are one line, no traceback."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from maestro import arguments, codec, presence
from maestro.arguments import EXIT_USAGE, Parser
from maestro.client import open_client
from maestro.errors import MaestroError, RemoteError
from maestro.logs import setup_logging
from maestro.settings import Settings, SettingsError
from maestro.supervisor import MeshError
from maestro.terminal import end_broken_pipe, printable
from proto.v1 import (
    DEFAULT_PRIORITY,
    PRIORITIES,
    ROLES,
    AwaitingApproval,
    Cancelled,
    ContextFile,
    Failed,
    Heartbeat,
    Queued,
    Rejected,
    Started,
    Succeeded,
    TaskEvent,
    TaskRecord,
    TaskRequest,
    TimedOut,
)

EXIT_OK = 0
EXIT_FAILED = 1


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code EXIT_FAILED."""


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="maestro", description="Orchestrate agent work through a policy guard.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = sub.add_parser(
        "submit",
        help="submit a task and print its id",
        description="Submit a task for the guard to judge and print its id. Options marked (repeatable) "
        "may be given several times.",
    )
    submit.add_argument("prompt", help="what the task should do; '-' reads it from standard input")
    submit.add_argument("--tenant", required=True, help="the tenant the task belongs to (required)")
    submit.add_argument(
        "--role",
        required=True,
        type=arguments.role,
        metavar="ROLE",
        help=f"who does it (required): an agent role ({', '.join(ROLES)}) or a human queue (human:<queue>)",
    )
    submit.add_argument(
        "--id", type=arguments.task_id, help="the task id, also its idempotency key (default: generated)"
    )
    submit.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="a file the agent gets as context, read now (repeatable)",
    )
    submit.add_argument(
        "--command",
        action="append",
        default=[],
        dest="commands",
        metavar="CMD",
        help="a shell command the agent runs in its sandbox, judged by the guard (repeatable)",
    )
    submit.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label kept with the task's record and events (repeatable)",
    )
    submit.add_argument(
        "--model", help="the model the task runs on and is billed for (default: the deployment's)"
    )
    submit.add_argument(
        "--priority",
        type=int,
        choices=PRIORITIES,
        default=DEFAULT_PRIORITY,
        metavar="0-9",
        help=f"within its role, a task of higher priority starts first (default {DEFAULT_PRIORITY})",
    )
    submit.add_argument(
        "--data-region",
        metavar="REGION",
        help="where the task's data may be processed: a jurisdiction (e.g. EU, US) or a cloud region",
    )
    submit.add_argument(
        "--no-tenant-data",
        dest="tenant_data",
        action="store_false",
        help="the task carries none of the tenant's data, so no residency pin applies to it",
    )
    submit.add_argument(
        "--data-tenant",
        action="append",
        default=[],
        dest="data_tenants",
        type=arguments.tenant,
        metavar="TENANT",
        help="another tenant whose data the task touches; its residency pin must hold too (repeatable)",
    )
    submit.add_argument("--parent", type=arguments.task_id, metavar="ID", help="the task this one is part of")
    submit.add_argument(
        "--schedule-to-start",
        type=float,
        metavar="SECONDS",
        help="end the task timed_out if no agent has started it this long after it was queued",
    )
    submit.add_argument(
        "--start-to-close",
        type=float,
        metavar="SECONDS",
        help="stop the task and end it timed_out if it runs longer than this",
    )
    submit.add_argument(
        "--wait", action="store_true", help="wait for a terminal state; exit 0 only on success"
    )
    submit.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="how long --wait waits (default 300)"
    )

    status = sub.add_parser("status", help="show a task's record")
    status.add_argument("id", type=arguments.task_id, help="the task id")
    status.add_argument("--json", action="store_true", help="print the record as JSON")

    watch = sub.add_parser("watch", help="print a task's events until it ends")
    watch.add_argument("id", type=arguments.task_id, help="the task id")
    watch.add_argument("--json", action="store_true", help="print each event as a JSON line")
    watch.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="stop waiting after this"
    )

    for name, command in _COMMANDS.items():
        sub.choices[name].set_defaults(run=command)
    # The CLI is the composition root: each service adds the commands that use its own core.
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def _prompt(given: str) -> str:
    if given != "-":
        return given
    prompt = sys.stdin.read()
    if not prompt.strip():
        raise CliError("the prompt read from standard input is empty")
    return prompt


def _request(args: argparse.Namespace) -> TaskRequest:
    labels: dict[str, str] = {}
    for label in args.label:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise CliError(f"--label {label!r}: expected KEY=VALUE")
        labels[key] = value
    files = []
    for path in args.file:
        try:
            files.append(ContextFile(path=path, content=Path(path).read_text(errors="replace")))
        except OSError as exc:
            raise CliError(f"--file {path}: {exc.strerror}") from None
    raw: dict[str, Any] = {
        "tenant": args.tenant,
        "role": args.role,
        "prompt": _prompt(args.prompt),
        "context": files,
        "commands": args.commands,
        "labels": labels,
        "model": args.model,
        "data_region": args.data_region,
        "tenant_data": args.tenant_data,
        "data_tenants": args.data_tenants,
        "parent": args.parent,
        "priority": args.priority,
    }
    if args.schedule_to_start is not None or args.start_to_close is not None:
        raw["timeouts"] = {
            "schedule_to_start_s": args.schedule_to_start,
            "start_to_close_s": args.start_to_close,
        }
    if args.id is not None:
        raw["id"] = args.id
    try:
        return msgspec.convert(raw, TaskRequest)
    except msgspec.ValidationError as exc:
        raise CliError(f"invalid request: {exc}") from None


def _describe(event: TaskEvent) -> str:
    detail = ""
    match event:
        case Rejected(decision=decision, reason=reason) | AwaitingApproval(decision=decision, reason=reason):
            rules = ", ".join(v.rule_id for v in decision.violations)
            detail = f"{reason} [{rules}]" if rules else reason
        case Queued(reservation_id=reservation):
            detail = f"reservation={reservation}"
        case Started(worker=worker, attempt=attempt) | Heartbeat(worker=worker, attempt=attempt):
            detail = f"worker={worker} attempt={attempt}"
        case Succeeded(cost_micro_usd=cost, output=output):
            first = output.splitlines()[0] if output else ""
            detail = f"cost=${cost / 1_000_000:.6f} {first[:80]}"
        case Failed(error=error):
            detail = error
        case Cancelled(reason=reason) | TimedOut(reason=reason):
            detail = reason
    kind = type(event).__struct_config__.tag
    return printable(f"{event.at.isoformat(timespec='milliseconds')}  {kind:<24} {detail}".rstrip())


def _print_record(record: TaskRecord) -> None:
    rows = [
        ("id", record.id),
        ("tenant", record.tenant),
        ("role", record.role or ""),
        ("state", record.state),
        ("created", record.created_at.isoformat(timespec="seconds")),
        ("updated", record.updated_at.isoformat(timespec="seconds")),
    ]
    if record.labels:
        rows.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(record.labels.items()))))
    if record.reason:
        rows.append(("reason", record.reason))
    if record.violations:
        rows.append(("violations", ", ".join(record.violations)))
    if record.error:
        rows.append(("error", record.error))
    if record.cost_micro_usd:
        rows.append(("cost", f"${record.cost_micro_usd / 1_000_000:.6f}"))
    for key, value in rows:
        print(f"{key:<11}{printable(value)}")
    if record.output:
        output = record.output if len(record.output) < 2000 else record.output[:2000] + "…"
        print(f"{'output':<11}{printable(output, multiline=True)}")


async def _submit(settings: Settings, args: argparse.Namespace) -> int:
    request = _request(args)
    async with open_client(settings) as client:
        task_id = await client.submit(request)
        print(task_id, flush=True)
        if await presence.roles_without_worker(client.bus, [request.role]):
            print(
                f"maestro: warning: {presence.unserved_warning([request.role], 'the task waits')}",
                file=sys.stderr,
            )
        if not args.wait:
            return EXIT_OK
        try:
            record = await client.wait(task_id, timeout=args.timeout)
        except TimeoutError:
            raise CliError(f"task {task_id} did not finish within {args.timeout:.0f}s") from None
        why = record.reason or record.error
        print(record.state + (f": {printable(why)}" if why else ""))
        return EXIT_OK if record.state == "succeeded" else EXIT_FAILED


async def _status(settings: Settings, args: argparse.Namespace) -> int:
    async with open_client(settings) as client:
        record = await client.get(args.id)
        if args.json:
            print(codec.encode(record).decode())
        else:
            _print_record(record)
    return EXIT_OK


# How long `watch` waits for a task's first event before it says there is no such task.
_FIRST_EVENT_S = 5.0


async def _watch(settings: Settings, args: argparse.Namespace) -> int:
    async with open_client(settings) as client, asyncio.timeout(args.timeout):
        events = client.watch(args.id)
        try:
            first = await asyncio.wait_for(anext(events), _FIRST_EVENT_S)
        except TimeoutError:
            raise CliError(f"no task {args.id}") from None
        show = (lambda e: codec.encode(e).decode()) if args.json else _describe
        print(show(first), flush=True)
        async for event in events:
            print(show(event), flush=True)
    return EXIT_OK


Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
"""What a subcommand runs: settings and parsed arguments in, exit code out."""

_COMMAND_MODULES = (
    "maestro.mesh_commands",
    "maestro.desk.cli",
    "maestro.access.token_cli",
    "maestro.access.nats_cli",
    "maestro.gate_cli",
    "maestro.review_cli",
    "maestro.doctor.command",
    "services.budget.cli",
    "services.orchestrator.cli",
    "services.orchestrator.workflow_cli",
    "services.guard.tools.check_pr_cli",
    "services.guard.tools.policy_cli",
    "services.guard.tools.dlq_cli",
)

_COMMANDS: dict[str, Command] = {
    "submit": _submit,
    "status": _status,
    "watch": _watch,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `maestro` console script."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a reader that went away is noticed here, not in the interpreter's last flush
    except BrokenPipeError:
        code = end_broken_pipe()
    sys.exit(code)


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        _fail(str(exc), EXIT_USAGE)
    setup_logging("INFO" if args.command == "up" else "WARNING")
    logging.getLogger("maestro.runtime").setLevel(logging.ERROR if args.command != "up" else logging.INFO)
    try:
        code: int = asyncio.run(args.run(settings, args))
    except KeyboardInterrupt:
        code = 130
    except RemoteError as exc:
        _fail(exc.description if exc.code != 503 else f"{exc.description} (is Maestro running?)", EXIT_FAILED)
    except TimeoutError:
        _fail("timed out", EXIT_FAILED)
    except SettingsError as exc:  # a setting a command checks before it starts anything (`maestro up`)
        _fail(str(exc), EXIT_USAGE)
    except BrokenPipeError:
        raise
    except (CliError, MaestroError, MeshError, ConnectionError, OSError) as exc:
        _fail(str(exc), EXIT_FAILED)
    return code


def _fail(message: str, code: int) -> NoReturn:
    # One line, inert: a message may quote a server's answer or the user's input.
    print(f"maestro: error: {printable(message)}", file=sys.stderr)
    sys.exit(code)
