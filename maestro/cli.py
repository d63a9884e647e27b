"""The `maestro` command: up, submit, status, watch, budget show, smoke; errors are one line, no traceback."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from maestro import codec, smoke
from maestro.client import open_client
from maestro.errors import MaestroError, RemoteError
from maestro.logs import setup_logging
from maestro.settings import Settings, SettingsError
from maestro.supervisor import (
    DEFAULT_BUDGET_REPLICAS,
    DEFAULT_NATS_PORT,
    DEFAULT_PORTS,
    MeshError,
    running_mesh,
)
from proto.v1 import (
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
EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code EXIT_FAILED."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maestro", description="Orchestrate agent work through a policy guard."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run the whole mesh (embedded JetStream unless MAESTRO_NATS_URL is set)")
    up.add_argument("--nats-port", type=int, default=DEFAULT_NATS_PORT, help="embedded server port (0: any)")
    up.add_argument("--api-port", type=int, default=DEFAULT_PORTS["orchestrator"], help="HTTP API port")
    up.add_argument("--data-dir", help="where the embedded server keeps its data (default .maestro)")
    up.add_argument(
        "--roles",
        action="append",
        metavar="ROLE[,ROLE...]",
        help="one agent process serving these roles; repeat for more processes (default: one serving all)",
    )
    up.add_argument("--split-roles", action="store_true", help="one agent process per role")
    up.add_argument("--free-ports", action="store_true", help="pick free ports for every service")
    up.add_argument(
        "--budget-replicas",
        type=int,
        default=DEFAULT_BUDGET_REPLICAS,
        metavar="N",
        help="budget processes, each restarted on its own (default: %(default)s, so none is a single point)",
    )
    up.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        help="how long Ctrl-C lets running tasks finish before it stops what is left "
        "(default: the ack wait, at least 10 s, plus 10 s)",
    )

    submit = sub.add_parser("submit", help="submit a task and print its id")
    submit.add_argument("prompt", help="what the task should do")
    submit.add_argument("--tenant", required=True)
    submit.add_argument("--role", required=True, choices=ROLES)
    submit.add_argument("--id", help="idempotency key (default: generated)")
    submit.add_argument(
        "--file", action="append", default=[], metavar="PATH", help="context file (repeatable)"
    )
    submit.add_argument("--command", action="append", default=[], dest="commands", metavar="CMD")
    submit.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--model")
    submit.add_argument("--data-region")
    submit.add_argument("--parent")
    submit.add_argument(
        "--wait", action="store_true", help="wait for a terminal state; exit 0 only on success"
    )
    submit.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits")

    status = sub.add_parser("status", help="show a task's record")
    status.add_argument("id")
    status.add_argument("--json", action="store_true")

    watch = sub.add_parser("watch", help="print a task's events until it ends")
    watch.add_argument("id")
    watch.add_argument("--json", action="store_true")
    watch.add_argument("--timeout", type=float, default=None)

    smoke_cmd = sub.add_parser(
        "smoke", help="bring the mesh up, run one task per role plus a bad one, report"
    )
    smoke_cmd.add_argument("--timeout", type=float, default=120.0)

    for name, command in _COMMANDS.items():
        sub.choices[name].set_defaults(run=command)
    # The CLI is the composition root: each service adds the commands that use its own core.
    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


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
        "prompt": args.prompt,
        "context": files,
        "commands": args.commands,
        "labels": labels,
        "model": args.model,
        "data_region": args.data_region,
        "parent": args.parent,
    }
    if args.id:
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
    return f"{event.at.isoformat(timespec='milliseconds')}  {kind:<24} {detail}".rstrip()


def _print_record(record: TaskRecord) -> None:
    rows = [
        ("id", record.id),
        ("tenant", record.tenant),
        ("role", record.role or ""),
        ("state", record.state),
        ("created", record.created_at.isoformat(timespec="seconds")),
        ("updated", record.updated_at.isoformat(timespec="seconds")),
    ]
    if record.reason:
        rows.append(("reason", record.reason))
    if record.violations:
        rows.append(("violations", ", ".join(record.violations)))
    if record.error:
        rows.append(("error", record.error))
    if record.cost_micro_usd:
        rows.append(("cost", f"${record.cost_micro_usd / 1_000_000:.6f}"))
    if record.output:
        rows.append(("output", record.output if len(record.output) < 2000 else record.output[:2000] + "…"))
    for key, value in rows:
        print(f"{key:<11}{value}")


async def _submit(settings: Settings, args: argparse.Namespace) -> int:
    request = _request(args)
    async with open_client(settings) as client:
        task_id = await client.submit(request)
        print(task_id, flush=True)
        if not args.wait:
            return EXIT_OK
        try:
            record = await client.wait(task_id, timeout=args.timeout)
        except TimeoutError:
            raise CliError(f"task {task_id} did not finish within {args.timeout:.0f}s") from None
        print(
            f"{record.state}{': ' + (record.reason or record.error) if record.reason or record.error else ''}"
        )
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


def _role_groups(specs: list[str], *, split: bool, default: Sequence[str]) -> list[list[str]]:
    groups = [[r.strip() for r in spec.split(",") if r.strip()] for spec in specs] or [list(default)]
    unknown = sorted({r for group in groups for r in group} - set(ROLES))
    if unknown or not all(groups):
        raise CliError(f"--roles: unknown roles {unknown}; known: {', '.join(ROLES)}")
    if split:
        return [[role] for group in groups for role in group]
    return groups


async def _up(settings: Settings, args: argparse.Namespace) -> int:
    if args.data_dir:
        settings = settings.with_(data_dir=args.data_dir)
    groups = _role_groups(args.roles or [], split=args.split_roles, default=settings.roles)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The children run in sessions of their own: these reach `maestro up` alone, which drains them in order.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    async with running_mesh(
        settings,
        nats_port=args.nats_port or -1,
        api_port=args.api_port,
        role_groups=groups,
        free_ports=args.free_ports,
        budget_replicas=args.budget_replicas,
        drain_s=args.drain_timeout,
    ) as mesh:
        where = f"embedded JetStream, data in {mesh.data_dir / 'jetstream'}" if mesh.embedded else "external"
        print("Maestro is up.", flush=True)
        print(f"  NATS     {mesh.nats_url} ({where})")
        print(f"  API      {mesh.api_url}/v1/tasks")
        for child in mesh.children:
            print(f"  metrics  {child.name:<20} {child.url}/metrics")
        print('  try      maestro submit --tenant acme --role planner --wait "Plan a CLI that counts words"')
        print("Ctrl-C stops everything.", flush=True)
        await stop.wait()
        print("stopping…", flush=True)
    print("stopped.", flush=True)
    return EXIT_OK


async def _smoke(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.nats_url:
        settings = settings.with_(data_dir=tempfile.mkdtemp(prefix="maestro-smoke-"))
    started = time.monotonic()
    async with running_mesh(settings, nats_port=-1, free_ports=True, child_logs=True) as mesh:
        print(f"mesh up in {time.monotonic() - started:.1f}s at {mesh.nats_url}", flush=True)
        async with open_client(settings.with_(nats_url=mesh.nats_url)) as client:
            return await smoke.run(client, timeout=args.timeout)


Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
"""What a subcommand runs: settings and parsed arguments in, exit code out."""

_COMMAND_MODULES = (
    "services.budget.cli",
    "services.orchestrator.cli",
    "services.guard.cli_check_pr",
    "services.guard.cli",
)

_COMMANDS: dict[str, Command] = {
    "submit": _submit,
    "status": _status,
    "watch": _watch,
    "up": _up,
    "smoke": _smoke,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `maestro` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        _fail(str(exc), EXIT_USAGE)
    setup_logging("INFO" if args.command == "up" else "WARNING")
    logging.getLogger("maestro.runtime").setLevel(logging.ERROR if args.command != "up" else logging.INFO)
    try:
        code = asyncio.run(args.run(settings, args))
    except KeyboardInterrupt:
        code = 130
    except RemoteError as exc:
        _fail(exc.description if exc.code != 503 else f"{exc.description} (is Maestro running?)", EXIT_FAILED)
    except TimeoutError:
        _fail("timed out", EXIT_FAILED)
    except (CliError, MaestroError, MeshError, ConnectionError, OSError) as exc:
        _fail(str(exc), EXIT_FAILED)
    sys.exit(code)


def _fail(message: str, code: int) -> NoReturn:
    print(f"maestro: error: {message}", file=sys.stderr)
    sys.exit(code)
