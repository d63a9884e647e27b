"""`maestro workflow run|status|watch|cancel|pause|resume`: workflows from a YAML file, followed by their id.

A workflow file is exactly the `Workflow` wire shape (proto/v1/workflows.py) in YAML or JSON, decoded as
strictly as `POST /v1/workflows` decodes it: a misspelt key is an error naming it and the file's line, as
`maestro policy check` reports a bundle's problems (`FILE:LINE: field: why`).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import yaml
from msgspec import inspect

from maestro import arguments, claims, codec, presence
from maestro.client import Client, open_client
from maestro.errors import MaestroError, NotFound
from maestro.settings import Settings
from maestro.terminal import printable
from proto.v1.workflows import WORKFLOW_ENDED, Workflow, WorkflowId, WorkflowRecord
from services.orchestrator.bodies import field_of

EXIT_OK = 0
EXIT_FAILED = 1
POLL_S = 0.2
"""How often `watch` reads the record: a step's state is seen unless it lasts less than this."""
# How long `watch` waits for the orchestrator to start a workflow before it says there is none.
_FIRST_RECORD_S = 5.0
# A DAG problem (raised by Workflow itself) begins with its place: `steps[2].needs[0]: no step is named 'x'`.
_DAG_PLACE = re.compile(r"^(steps(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)?)[: ]")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_AT = re.compile(r" - at `\$[^`]*`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


class WorkflowCliError(MaestroError):
    """A workflow command that cannot go on: one line for the user, exit 1 (maestro/cli.py prints it)."""


class WorkflowFileError(WorkflowCliError):
    """A workflow file that does not decode: `str()` is `FILE:LINE: field: why`, one line."""


def _workflow_id(value: str) -> str:
    try:
        return msgspec.convert(value, WorkflowId)
    except msgspec.ValidationError:
        raise argparse.ArgumentTypeError(
            f"not a workflow id: {value!r} (1 to 39 letters, digits, '-' or '_', starting with a letter or "
            "a digit)"
        ) from None


def register(sub: Any) -> None:
    """Add the `workflow` command group to the CLI's subparsers."""
    workflow = sub.add_parser("workflow", help="workflows: run one from a file, follow it, stop it")
    commands = workflow.add_subparsers(dest="workflow_command", required=True, metavar="SUBCOMMAND")

    run = commands.add_parser("run", help="run the workflow a YAML or JSON file defines; prints its id")
    run.add_argument("file", help="the workflow (YAML or JSON, the Workflow shape); '-' reads standard input")
    run.add_argument("--tenant", type=arguments.tenant, help="the tenant (replaces the file's)")
    run.add_argument(
        "--id", type=_workflow_id, help="the workflow id, its idempotency key (replaces the file's)"
    )
    run.add_argument("--wait", action="store_true", help="wait for it to end; exit 0 only when it succeeded")
    run.add_argument(
        "--timeout", type=float, default=600.0, metavar="SECONDS", help="how long --wait waits (default 600)"
    )
    run.set_defaults(run=run_workflow)

    status = commands.add_parser("status", help="a workflow's state, reason, cost and steps")
    status.add_argument("id", type=_workflow_id, help="the workflow id")
    status.add_argument("--json", action="store_true", help="print the record as JSON")
    status.set_defaults(run=show_status)

    watch = commands.add_parser("watch", help="print each change of a workflow's or its steps' state")
    watch.add_argument("id", type=_workflow_id, help="the workflow id")
    watch.add_argument("--timeout", type=float, metavar="SECONDS", help="stop waiting after this")
    watch.set_defaults(run=watch_workflow)

    for action, text in (
        ("cancel", "cancel a workflow: steps not ended are cancelled (running ones stopped)"),
        ("pause", "start no new step of a workflow until it is resumed (running ones finish)"),
        ("resume", "start a paused workflow's steps again"),
    ):
        control = commands.add_parser(action, help=text)
        control.add_argument("id", type=_workflow_id, help="the workflow id")
        control.add_argument("--by", help="who does it (default: your user name)")
        kept = "the workflow's record" if action == "cancel" else "the workflow's events"
        control.add_argument("--reason", default="", help=f"why (kept in {kept})")
        control.set_defaults(run=control_workflow, action=action)


# -- the file -----------------------------------------------------------------------------------------


def _read(path: str) -> str:
    """The file's text (standard input for '-'); raises WorkflowFileError."""
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise WorkflowFileError(f"{path}: {why}") from None


def _line(root: yaml.Node | None, path: str) -> int:
    """The 1-based line of the deepest part of JSON path `path` ($.steps[1].needs) the YAML has; 0 if none."""
    node, line = root, 0
    for name, index in _SEGMENT.findall(path[1:]):
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and name:
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == name:
                    found, line = value, key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and index and int(index) < len(node.value):
            found = node.value[int(index)]
            line = found.start_mark.line + 1
        if found is None:
            break
        node = found
    return line


def _unwrap(info: inspect.Type) -> inspect.Type:
    """`info` without constraints, a union reduced to its one struct or list (`Need` of `str | Need`)."""
    while True:
        match info:
            case inspect.Metadata(type=inner):
                info = inner
            case inspect.UnionType(types=types):
                shaped = [t for t in types if isinstance(t, inspect.StructType | inspect.ListType)]
                if len(shaped) != 1:
                    return info
                info = shaped[0]
            case _:
                return info


def _fields_at(path: str) -> set[str] | None:
    """The field names of the struct JSON path `path` leads to in a Workflow, or None if not a struct."""
    info = _unwrap(inspect.type_info(Workflow))
    for name, _index in _SEGMENT.findall(path[1:]):
        match info:
            case inspect.StructType(fields=fields) if name:
                known = {f.encode_name: f.type for f in fields}
                if name not in known:
                    return None
                info = _unwrap(known[name])
            case inspect.ListType(item_type=item) if not name:
                info = _unwrap(item)
            case _:
                return None
    return {f.encode_name for f in info.fields} if isinstance(info, inspect.StructType) else None


def _first_unknown(data: Any, path: str = "$") -> tuple[str, str] | None:
    """The JSON path of the first key (in file order) the Workflow shape does not have, and that key."""
    if isinstance(data, dict):
        fields = _fields_at(path)
        for key, value in data.items():
            if fields is not None and key not in fields:
                return f"{path}.{key}", str(key)
            found = _first_unknown(value, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(data, list):
        for n, item in enumerate(data):
            found = _first_unknown(item, f"{path}[{n}]")
            if found is not None:
                return found
    return None


def parse_workflow(
    text: str, source: str, *, tenant: str | None = None, workflow_id: str | None = None
) -> Workflow:
    """Decode a workflow file's text strictly, `tenant` and `workflow_id` (when given) replacing the file's;
    raises WorkflowFileError naming the file, the line and the field at fault."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise WorkflowFileError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise WorkflowFileError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise WorkflowFileError(f"{source}: expected a workflow (a mapping with tenant and steps)")
    if tenant is not None:
        data["tenant"] = tenant
    if workflow_id is not None:
        data["id"] = workflow_id
    try:
        return codec.decode_strict(Workflow, msgspec.json.encode(data))
    except (codec.DecodeError, TypeError) as exc:
        message = str(exc)
    # A misspelt key first: it may be why a required field is missing or a need was not seen.
    unknown = _first_unknown(data)
    if unknown is not None:
        path, key = unknown
        fields = _fields_at(path.rsplit(".", 1)[0]) or set()
        close = difflib.get_close_matches(key, fields, n=1)
        message = f"unknown field `{key}`" + (f" (did you mean `{close[0]}`?)" if close else "")
    elif place := _DAG_PLACE.match(message):
        path = f"$.{place.group(1)}"
        message = message.removeprefix(f"{place.group(1)}: ")
    else:
        path = field_of(Workflow, message)
        if path == "$.tenant" and _MISSING.search(message):
            message += " (give it in the file or with --tenant)"
    message = _AT.sub("", message)  # the field is named already
    line = _line(root, path)
    where = f"{source}:{line}" if line else source
    field = "" if path == "$" else f" {path.removeprefix('$.')}:"
    raise WorkflowFileError(f"{where}:{field} {message}")


# -- printing -----------------------------------------------------------------------------------------


def _cost(micro_usd: int) -> str:
    return f"${micro_usd / 1_000_000:.6f}"


def _print_steps(record: WorkflowRecord) -> None:
    width = max([4, *(len(s.name) for s in record.steps)]) + 2
    print(f"{'step':<{width}}{'state':<19}{'attempts':<10}{'cost':<12}error")
    for step in record.steps:
        error = step.error.splitlines()[0] if step.error.strip() else ""
        row = (
            f"{step.name:<{width}}{step.state:<19}{step.attempts:<10}{_cost(step.cost_micro_usd):<12}{error}"
        )
        print(printable(row.rstrip()))


def _print_record(record: WorkflowRecord) -> None:
    state = record.state + (
        f" (ending {record.ending})" if record.ending and record.ending != record.state else ""
    )
    rows = [
        ("id", record.id),
        ("tenant", record.tenant),
        ("state", state),
        ("created", record.created_at.isoformat(timespec="seconds")),
        ("updated", record.updated_at.isoformat(timespec="seconds")),
    ]
    if record.labels:
        rows.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(record.labels.items()))))
    if record.reason:
        rows.append(("reason", record.reason))
    if record.cancelled_by:
        rows.append(("cancelled", f"by {record.cancelled_by}"))
    rows.append(("cost", _cost(record.cost_micro_usd)))
    for key, value in rows:
        print(printable(f"{key:<11}{value}"))
    print()
    _print_steps(record)


def _summary(record: WorkflowRecord) -> str:
    return printable(record.state + (f": {record.reason}" if record.reason else ""))


# -- the commands -------------------------------------------------------------------------------------


async def run_workflow(settings: Settings, args: argparse.Namespace) -> int:
    """Run the workflow the file defines and print its id; with --wait, its end and each step's state."""
    workflow = parse_workflow(_read(args.file), args.file, tenant=args.tenant, workflow_id=args.id)
    async with open_client(settings) as client:
        await _refuse_taken_id(client, workflow)
        workflow_id = await client.run_workflow(workflow)
        print(workflow_id, flush=True)
        idle = await presence.roles_without_worker(client.bus, sorted({s.role for s in workflow.steps}))
        if idle:
            print(f"maestro: warning: {presence.unserved_warning(idle, 'those steps wait')}", file=sys.stderr)
        if not args.wait:
            return EXIT_OK
        try:
            record = await client.wait_workflow(workflow_id, timeout=args.timeout)
        except TimeoutError:
            raise WorkflowCliError(f"workflow {workflow_id} did not end within {args.timeout:.0f}s") from None
    print(_summary(record))
    _print_steps(record)
    return EXIT_OK if record.state == "succeeded" else EXIT_FAILED


async def _refuse_taken_id(client: Client, workflow: Workflow) -> None:
    """Raise WorkflowCliError when the id is another workflow's (the orchestrator would dead-letter this
    one)."""
    try:
        found = await client.workflow(workflow.id)
    except NotFound:
        return
    if found.tenant != workflow.tenant or found.digest != claims.digest(workflow):
        raise WorkflowCliError(f"workflow id {workflow.id} is taken by another workflow")


async def show_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print the workflow's record: state, reason, cost and a table of its steps."""
    async with open_client(settings) as client:
        record = await client.workflow(args.id)
    if args.json:
        print(codec.encode(record).decode())
    else:
        _print_record(record)
    return EXIT_OK


def _states(record: WorkflowRecord) -> list[tuple[str, str]]:
    """The workflow's state and each step's, in the order they change: an ending workflow's last."""
    steps: list[tuple[str, str]] = [(f"step {s.name}", s.state) for s in record.steps]
    mine: list[tuple[str, str]] = [("workflow", record.state)]
    return steps + mine if record.state in WORKFLOW_ENDED else mine + steps


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


async def watch_workflow(settings: Settings, args: argparse.Namespace) -> int:
    """Print each change of the workflow's state or of a step's until the workflow ends."""
    async with open_client(settings) as client, asyncio.timeout(args.timeout):
        try:
            async with asyncio.timeout(_FIRST_RECORD_S):
                record = await _first_record(client, args.id)
        except TimeoutError:
            raise WorkflowCliError(f"no workflow {args.id}") from None
        seen: dict[str, str] = {}
        while True:
            width = max(len(k) for k, _ in _states(record)) + 2
            for what, state in _states(record):
                if seen.get(what) != state:
                    seen[what] = state
                    detail = f"  {record.reason}" if what == "workflow" and record.reason else ""
                    print(
                        printable(f"{_stamp(record.updated_at)}  {what:<{width}}{state}{detail}"), flush=True
                    )
            if record.state in WORKFLOW_ENDED:
                return EXIT_OK
            await asyncio.sleep(POLL_S)
            record = await client.workflow(args.id)


async def _first_record(client: Client, workflow_id: str) -> WorkflowRecord:
    while True:
        try:
            return await client.workflow(workflow_id)
        except NotFound:
            await asyncio.sleep(POLL_S)


async def control_workflow(settings: Settings, args: argparse.Namespace) -> int:
    """Cancel, pause or resume the workflow; print what it is now."""
    by = args.by or arguments.user()
    async with open_client(settings) as client:
        match args.action:
            case "cancel":
                record = await client.cancel_workflow(args.id, by=by, reason=args.reason)
            case "pause":
                record = await client.pause_workflow(args.id, by=by, reason=args.reason)
            case _:
                record = await client.resume_workflow(args.id, by=by, reason=args.reason)
    done = {"cancel": "cancelled", "pause": "paused", "resume": "resumed"}[args.action]
    note = ""
    if args.action == "cancel" and record.state not in WORKFLOW_ENDED:
        note = f"; it ends once its running steps have stopped (now {record.state})"
    why = f": {args.reason}" if args.reason else ""
    print(printable(f"{done} {record.id} (by {by}){why}{note}"))
    return EXIT_OK
