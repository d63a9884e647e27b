"""`maestro inbox|claim|complete|release` (a person's human work, as the subject of their API token) and
`maestro people add|ls|rm` (who does it: skills, capacity, hours, availability).

The token is read from MAESTRO_TOKEN_FILE, else the local admin token `maestro up` made
(<data_dir>/api.token): the person is who the token says, never a name typed on the command line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from maestro import arguments, codec
from maestro.access.grants import BadToken, Caller
from maestro.access.local_token import TOKEN_FILE
from maestro.access.token_store import TokenStore
from maestro.client import Client, open_client
from maestro.desk.answers import BadAnswer, answer_from
from maestro.desk.desk import Desk, DeskError, Work
from maestro.desk.people import PeopleStore
from maestro.errors import MaestroError
from maestro.settings import Settings
from maestro.terminal import printable
from proto.v1 import TaskRecord
from proto.v1.humans import Person, WorkingHours, form_of
from proto.v1.ids import QUEUE_PATTERN, queue_of

_COLUMNS = ("ID", "TENANT", "QUEUE", "STATE", "HELD BY", "WAITING")
T = TypeVar("T")
_QUEUE = re.compile(QUEUE_PATTERN)


class DeskCliError(MaestroError):
    """What stops a human-work command; one line."""


def register(sub: Any) -> None:
    """Add inbox, claim, complete, release and the people group to the CLI's subparsers."""
    inbox = sub.add_parser("inbox", help="human tasks you may claim or hold, oldest first")
    inbox.add_argument("--queue", type=_queue, help="only this human queue's tasks (`security`)")
    inbox.add_argument("--json", action="store_true", help="print each record as a JSON line")
    inbox.set_defaults(run=show_inbox)

    claim = sub.add_parser(
        "claim", help="take a human task (yours alone until its lease ends; again: renew the lease)"
    )
    claim.add_argument("id", type=arguments.task_id, help="the task id")
    claim.set_defaults(run=claim_task)

    complete = sub.add_parser("complete", help="answer a human task you hold; the answer is its output")
    complete.add_argument("id", type=arguments.task_id, help="the task id")
    complete.add_argument(
        "--answer",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="one field of the answer (an approval: yes or no; a file: @path); repeat for each field",
    )
    complete.add_argument("--answer-json", metavar="JSON", help="the whole answer as a JSON object")
    complete.set_defaults(run=complete_task)

    release = sub.add_parser("release", help="give a human task you hold back to its queue")
    release.add_argument("id", type=arguments.task_id, help="the task id")
    release.add_argument("--reason", default="", help="why (kept in the task's events)")
    release.set_defaults(run=release_task)

    people = sub.add_parser("people", help="who does human work: add, ls, rm")
    commands = people.add_subparsers(dest="people_command", required=True, metavar="SUBCOMMAND")
    add = commands.add_parser("add", help="add a person, or change one (every option given replaces)")
    add.add_argument("id", help="who they are: the subject of the API tokens they act with")
    add.add_argument("--name", default="", help="their name, for people to read")
    add.add_argument("--skill", action="append", default=[], type=_queue, help="a queue they serve; repeat")
    add.add_argument("--capacity", type=arguments.positive, default=1, help="tasks they hold at once (1)")
    add.add_argument("--timezone", default="UTC", help="their IANA time zone (Europe/Paris)")
    add.add_argument("--hours", help="when they work, HH:MM-HH:MM in their time zone (default: any time)")
    add.add_argument("--days", default="1-5", help="the days --hours covers: 1-5 (Monday to Friday), 1,3,5")
    add.add_argument("--unavailable", action="store_true", help="mark them unavailable: they claim nothing")
    add.add_argument("--lead", action="store_true", help="may complete or release others' claims")
    add.set_defaults(run=add_person)
    ls = commands.add_parser("ls", help="list the people")
    ls.add_argument("--json", action="store_true", help="print each person as a JSON line")
    ls.set_defaults(run=list_people)
    rm = commands.add_parser("rm", help="remove a person (their claims stand until released or lapsed)")
    rm.add_argument("id", help="who")
    rm.set_defaults(run=remove_person)


def _queue(text: str) -> str:
    name = queue_of(text)  # `human:security` names the queue as well as `security`
    if not _QUEUE.match(name):
        raise argparse.ArgumentTypeError(
            f"not a queue name: {text[:40]!r} (lowercase letters, digits and `_`, e.g. security)"
        )
    return name


async def _caller(client: Client, settings: Settings) -> Caller:
    path = Path(settings.token_file) if settings.token_file else Path(settings.data_dir) / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise DeskCliError(
            f"cannot read your API token from {path} ({exc.strerror}): set MAESTRO_TOKEN_FILE to the file "
            "holding it (`maestro token create --scope work --subject YOU`)"
        ) from None
    try:
        return Caller.of(await TokenStore(client.bus).opened_by(token))
    except BadToken as exc:
        raise DeskCliError(f"the token in {path} does not open the API: {exc}") from None


def _desk(client: Client) -> Desk:
    return Desk(client.bus, PeopleStore(client.bus))


async def show_inbox(settings: Settings, args: argparse.Namespace) -> int:
    """Print the human tasks the caller may claim or holds: a table, or JSON lines with --json."""
    async with open_client(settings) as client:
        caller = await _caller(client, settings)
        records = await _desk(client).inbox(caller, args.queue)
    if args.json:
        for record in records:
            print(codec.encode(record).decode(), flush=True)
        return 0
    now = datetime.now(UTC)
    rows = [_row(record, now) for record in records]
    widths = [max(len(row[i]) for row in (_COLUMNS, *rows)) for i in range(len(_COLUMNS))]
    for row in (_COLUMNS, *rows):
        print(printable("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()))
    return 0


def _row(record: TaskRecord, now: datetime) -> tuple[str, ...]:
    since = record.queued_at or record.created_at
    waited = int((now - since).total_seconds())
    held = record.worker if record.state == "running" else ""
    state = "claimed" if record.state == "running" else "waiting"
    return (record.id, record.tenant, queue_of(record.role or ""), state, held, f"{waited}s")


async def claim_task(settings: Settings, args: argparse.Namespace) -> int:
    """Claim the task, then print what it asks: its instructions, inputs and form."""
    async with open_client(settings) as client:
        caller = await _caller(client, settings)
        desk = _desk(client)
        claimed = await _acting(desk.claim(caller, args.id))
        work = await _acting(desk.work(caller, args.id))
    until = claimed.lease_until.isoformat(timespec="seconds")
    print(printable(f"claimed {claimed.task_id} (by {claimed.by}) until {until}"))
    _print_work(work)
    return 0


async def complete_task(settings: Settings, args: argparse.Namespace) -> int:
    """Complete the task with the answer given, checked against its form."""
    async with open_client(settings) as client:
        caller = await _caller(client, settings)
        desk = _desk(client)
        work = await _acting(desk.work(caller, args.id))
        try:
            answer = answer_from(form_of(work.record.human), args.answer, args.answer_json)
        except BadAnswer as exc:
            raise DeskCliError(str(exc)) from None
        done = await _acting(desk.complete(caller, args.id, answer))
    print(printable(f"completed {done.task_id} (by {done.worker}): {done.output}"))
    return 0


async def release_task(settings: Settings, args: argparse.Namespace) -> int:
    """Give the task back to its queue."""
    async with open_client(settings) as client:
        caller = await _caller(client, settings)
        released = await _acting(_desk(client).release(caller, args.id, args.reason))
    print(printable(f"released {released.task_id} (by {released.by}): {released.reason}"))
    return 0


async def add_person(settings: Settings, args: argparse.Namespace) -> int:
    """Store the person (replacing what was stored under their id)."""
    try:
        person = Person(
            id=args.id,
            name=args.name,
            skills=sorted(set(args.skill)),
            capacity=args.capacity,
            timezone=args.timezone,
            hours=_hours(args.hours, args.days) if args.hours else None,
            available=not args.unavailable,
            lead=args.lead,
        )
    except (ValueError, TypeError) as exc:
        raise DeskCliError(str(exc)) from None
    async with open_client(settings) as client:
        await PeopleStore(client.bus).put(person)
    print(printable(f"{person.id}: {_describe(person)}"))
    return 0


async def list_people(settings: Settings, args: argparse.Namespace) -> int:
    """Print everyone: one line each, or JSON lines with --json."""
    async with open_client(settings) as client:
        people = await PeopleStore(client.bus).list()
    for person in people:
        line = codec.encode(person).decode() if args.json else f"{person.id}  {_describe(person)}"
        print(printable(line), flush=True)
    return 0


async def remove_person(settings: Settings, args: argparse.Namespace) -> int:
    """Forget the person."""
    async with open_client(settings) as client:
        removed = await PeopleStore(client.bus).remove(args.id)
    if removed is None:
        raise DeskCliError(f"no person {args.id}")
    print(printable(f"removed {removed.id}"))
    return 0


async def _acting(doing: Awaitable[T]) -> T:
    try:
        return await doing
    except DeskError as exc:
        raise DeskCliError(str(exc)) from None


def _print_work(work: Work) -> None:
    assignment = work.assignment
    if assignment is None:
        return
    request = assignment.request
    print("\ninstructions:")
    print(printable(request.prompt))
    for file in request.context:
        print(printable(f"\n--- input: {file.path}"))
        print(printable(file.content))
    if assignment.decision.violations:
        print("\nthe guard found:")
        for violation in assignment.decision.violations:
            print(printable(f"  {violation.rule_id} at {violation.location}: {violation.message}"))
    print("\nanswer with `maestro complete ID --answer FIELD=VALUE ...`:")
    for field in form_of(work.record.human).fields:
        optional = "" if field.required else " (optional)"
        choices = f": one of {', '.join(field.choices)}" if field.choices else ""
        print(printable(f"  {field.name} ({field.kind}{choices}){optional} {field.label}".rstrip()))


def _hours(span: str, days: str) -> WorkingHours:
    start, sep, end = span.partition("-")
    if not sep:
        raise DeskCliError(f"--hours {span[:40]!r}: give HH:MM-HH:MM (09:00-17:00)")
    return WorkingHours(start=start, end=end, days=_days(days))


def _days(text: str) -> list[int]:
    found: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            found.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise DeskCliError(f"--days {text[:40]!r}: give days 1 (Monday) to 7, as 1-5 or 1,3,5") from None
    return sorted(found)


def _describe(person: Person) -> str:
    hours = "any time"
    if person.hours is not None:
        hours = f"{person.hours.start}-{person.hours.end} on days {person.hours.days}"
    parts = [
        f"skills {', '.join(person.skills) or '(none)'}",
        f"capacity {person.capacity}",
        f"{hours} ({person.timezone})",
        "available" if person.available else "unavailable",
    ]
    return "; ".join(parts + (["lead"] if person.lead else []))
