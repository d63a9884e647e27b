"""`maestro dlq ls|show|replay`: read the dead letters, their data masked as the guard masks credentials.

Letters from the guard were masked when they were kept; other services keep the original bytes (a task
assignment, an event), so whatever is shown of a letter goes through the guard's `mask_text` first.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from maestro import arguments, dead_letters
from maestro.errors import MaestroError
from maestro.runtime import open_bus
from maestro.settings import Settings
from maestro.terminal import printable


def register(sub: Any) -> None:
    """Add the `dlq` command group to the CLI's subparsers."""
    dlq = sub.add_parser("dlq", help="dead letters: messages a service could not handle, with the reason")
    commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="SUBCOMMAND")

    ls = commands.add_parser(
        "ls", help="list dead letters, newest first: sequence, time, origin, subject, reason"
    )
    ls.add_argument("--origin", type=arguments.origin, help="only letters from this service (e.g. guard)")
    ls.add_argument(
        "--limit", type=arguments.positive, default=20, help="show at most this many (default 20)"
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per letter, without its data")
    ls.set_defaults(run=list_letters)

    show = commands.add_parser("show", help="one dead letter with its headers and data, credentials masked")
    show.add_argument("seq", type=arguments.positive, help="the letter's sequence, as `dlq ls` shows it")
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(run=show_letter)

    replay = commands.add_parser(
        "replay",
        help="publish letters again to their original subject, then delete them",
        description="Publish each letter's original data to its original subject with its original "
        "headers (a fresh Nats-Msg-Id), then delete the letter, so it is never replayed twice.",
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("seq", nargs="?", type=arguments.positive, help="the letter's sequence")
    which.add_argument("--all", action="store_true", help="every letter, oldest first")
    replay.add_argument("--origin", type=arguments.origin, help="only letters from this service")
    replay.set_defaults(run=replay_letters)


def _masked(text: str) -> str:
    from maestro.policy.policies.credentials import mask_text

    return mask_text(text)


def _text(data: bytes) -> str:
    # As the guard's scrub reads it: bytes that are not UTF-8 one character per byte, so nothing is lost.
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _summary(stored: dead_letters.Stored) -> dict[str, Any]:
    letter = stored.letter
    return {
        "seq": stored.seq,
        "at": letter.at.isoformat(timespec="seconds"),
        "origin": letter.origin,
        "subject": _masked(letter.subject),
        "reason": _masked(letter.reason),
        "deliveries": letter.deliveries,
    }


async def list_letters(settings: Settings, args: argparse.Namespace) -> int:
    """Print the newest dead letters, one line each."""
    async with open_bus(settings, "maestro-cli", patience_s=10.0) as bus:
        found = await dead_letters.latest(bus.js, origin=args.origin, limit=args.limit)
    if args.json:
        for stored in found:
            print(msgspec.json.encode(_summary(stored)).decode())
        return 0
    print(f"{'SEQ':<7} {'TIME':<25} {'ORIGIN':<13} {'SUBJECT':<30} REASON")
    for stored in found:
        row = _summary(stored)
        line = f"{row['seq']:<7} {row['at']:<25} {row['origin']:<13} {row['subject']:<30} {row['reason']}"
        print(printable(line))
    return 0


async def show_letter(settings: Settings, args: argparse.Namespace) -> int:
    """Print one dead letter, its headers and its data, credentials masked."""
    async with open_bus(settings, "maestro-cli", patience_s=10.0) as bus:
        stored = await dead_letters.read(bus.js, args.seq)
    letter = stored.letter
    shown = {
        **_summary(stored),
        "stream_seq": letter.stream_seq,
        "headers": {k: _masked(v) for k, v in letter.headers.items()},
        "data": _masked(_text(letter.data)),
    }
    if args.json:
        print(msgspec.json.encode(shown).decode())
        return 0
    for key in ("seq", "at", "origin", "subject", "reason", "deliveries", "stream_seq"):
        print(printable(f"{key:<12}{shown[key]}"))
    for name, value in sorted(shown["headers"].items()):
        print(printable(f"{'header':<12}{name}: {value}"))
    print(f"data        {len(letter.data)} bytes:")
    print(printable(shown["data"], multiline=True))
    return 0


async def replay_letters(settings: Settings, args: argparse.Namespace) -> int:
    """Replay one letter, or every letter (from one origin) oldest first, skipping what is not a letter."""
    async with open_bus(settings, "maestro-cli", patience_s=10.0) as bus:
        if not args.all:
            stored = await dead_letters.read(bus.js, args.seq)
            if args.origin is not None and stored.letter.origin != args.origin:
                raise MaestroError(
                    f"dead letter {args.seq} is from {stored.letter.origin}, not {args.origin}"
                )
            await dead_letters.replay(bus.js, stored)
            _replayed(stored)
            return 0
        replayed = skipped = 0
        for stored in reversed(await dead_letters.latest(bus.js, origin=args.origin, limit=None)):
            try:
                await dead_letters.replay(bus.js, stored)
            except dead_letters.NotReplayable as exc:
                print(f"maestro: skipped: {exc}", file=sys.stderr)
                skipped += 1
                continue
            _replayed(stored)
            replayed += 1
    print(f"replayed {replayed} dead letter{'' if replayed == 1 else 's'}")
    return 1 if skipped else 0


def _replayed(stored: dead_letters.Stored) -> None:
    print(printable(f"replayed {stored.seq} ({stored.letter.origin}) to {stored.letter.subject}"))
