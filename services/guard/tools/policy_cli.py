"""`maestro policy check|push|show|reset` and `maestro guard eval`: the guard's engine and bundles."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec

from maestro import arguments
from maestro.client import open_client
from maestro.settings import Settings
from maestro.terminal import printable
from proto.v1 import TaskRequest

if TYPE_CHECKING:
    from maestro.policy.bundle import Bundle, BundleError

# The engine and bundles are imported inside the commands: they load regex, shell and license
# libraries that every other `maestro` command would otherwise pay for at start-up.

EXIT_OK = 0
EXIT_INVALID = 1
# What problems of the bundle in the bucket are reported against: never the file the user pushes.
STORED = "stored bundle"


def register(sub: Any) -> None:
    """Add the `policy` and `guard` command groups to the CLI's subparsers."""
    policy = sub.add_parser("policy", help="policy bundles: validate, store, show, reset")
    commands = policy.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    check = commands.add_parser("check", help="validate a bundle; errors name the line and the field")
    check.add_argument("file", help="bundle YAML")
    check.set_defaults(run=check_bundle)
    push = commands.add_parser("push", help="validate a bundle and store it; running guards switch to it")
    push.add_argument("file", help="bundle YAML (with --tenant: that tenant's override)")
    push.add_argument(
        "--tenant",
        type=arguments.tenant,
        help="the file is this tenant's override, merged into the stored bundle",
    )
    push.add_argument("--by", help="who pushes, kept with the bundle (default: your user name)")
    push.set_defaults(run=push_bundle)
    show = commands.add_parser(
        "show", help="the bundle the guards use: version, hash, shipped or pushed, by whom and when"
    )
    show.add_argument("--json", action="store_true", help="print it as JSON")
    show.set_defaults(run=show_bundle)
    reset = commands.add_parser("reset", help="go back to the shipped bundle (kept like a push: who, when)")
    reset.add_argument("--by", help="who resets, kept with the change (default: your user name)")
    reset.set_defaults(run=reset_bundle)

    guard = sub.add_parser("guard", help="the policy guard, offline")
    guard_commands = guard.add_subparsers(dest="guard_command", required=True, metavar="SUBCOMMAND")
    ev = guard_commands.add_parser(
        "eval", help="judge TaskRequest JSON lines from stdin; one Decision JSON line each on stdout"
    )
    ev.add_argument("--policy", metavar="FILE", help="bundle YAML (default: the shipped bundle)")
    ev.add_argument("--tenant", type=arguments.tenant, help="judge every request as this tenant's")
    ev.set_defaults(run=eval_requests)


def _read(path: str) -> bytes:
    from maestro.policy.bundle import BundleError, Problem

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BundleError([Problem(0, "$", exc.strerror or str(exc))]) from None


def _report(path: str, exc: BundleError, out: TextIO) -> None:
    # Only a line the file has is cited; a problem of the whole file (or of no line of it) names the field.
    for problem in exc.problems:
        where = f"{path}:{problem.line}" if problem.line else path
        field = "" if problem.path == "$" and not problem.line else f" {problem.path}:"
        print(f"{where}:{field} {problem.message}", file=out)


async def check_bundle(settings: Settings, args: argparse.Namespace) -> int:
    """Validate a bundle file: print its version and hash, or every problem with its line."""
    from maestro.policy.bundle import BundleError, parse

    try:
        bundle = parse(_read(args.file))
    except BundleError as exc:
        _report(args.file, exc, sys.stderr)
        return EXIT_INVALID
    tenants = ", ".join(sorted(bundle.tenants)) or "none"
    print(f"{args.file}: ok: version {bundle.version}, sha256 {bundle.hash}, tenant overrides: {tenants}")
    return EXIT_OK


async def push_bundle(settings: Settings, args: argparse.Namespace) -> int:
    """Validate a bundle (or a tenant's override) and store it in the policy bucket."""
    from maestro.policy import bundle_store
    from maestro.policy.bundle import BundleError, parse

    try:
        text = _read(args.file)
        if args.tenant is None:
            parse(text)  # refuse before connecting
        async with open_client(settings, patience_s=10.0) as client:
            view = await client.push_policy(text, tenant=args.tenant, by=args.by or arguments.user())
    except bundle_store.StoredBundleError as exc:
        _report(STORED, exc, sys.stderr)
        return EXIT_INVALID
    except BundleError as exc:
        _report(args.file, exc, sys.stderr)
        return EXIT_INVALID
    print(f"pushed: version {view.version}, sha256 {view.hash}")
    return EXIT_OK


async def show_bundle(settings: Settings, args: argparse.Namespace) -> int:
    """Print the bundle the guards use, where it comes from, and who stored it when."""
    from maestro.policy import bundle_store

    async with open_client(settings, patience_s=10.0) as client:
        try:
            view = await client.policy()
        except bundle_store.StoredBundleError as exc:
            _report(STORED, exc, sys.stderr)
            return EXIT_INVALID
    pushed_at = view.pushed_at.isoformat(timespec="seconds") if view.pushed_at else None
    if args.json:
        shown = {k: v for k, v in msgspec.to_builtins(view).items() if k != "yaml"}
        print(msgspec.json.encode({**shown, "pushed_at": pushed_at}).decode())
        return EXIT_OK
    if not view.revision:
        origin = "shipped (nothing was ever pushed)"
    else:
        done = "pushed" if view.source == "pushed" else "reset to the shipped bundle"
        origin = f"{view.source} ({done} by {view.pushed_by or 'someone unknown'} at {pushed_at})"
    rows = [
        ("version", view.version),
        ("sha256", view.hash),
        ("source", origin),
        ("revision", str(view.revision)),
        ("tenants", ", ".join(view.tenants) or "none (every tenant gets the default policy)"),
    ]
    for key, value in rows:
        print(f"{key:<10}{printable(value)}")
    return EXIT_OK


async def reset_bundle(settings: Settings, args: argparse.Namespace) -> int:
    """Go back to the shipped bundle; running guards switch to it."""
    async with open_client(settings, patience_s=10.0) as client:
        view = await client.reset_policy(by=args.by or arguments.user())
    print(f"reset to the shipped bundle: version {view.version}, sha256 {view.hash}")
    return EXIT_OK


def _bundle(path: str | None) -> Bundle:
    from maestro.policy.bundle import load_default, parse

    return parse(_read(path)) if path else load_default()


def _judge_lines(
    lines: Iterable[bytes], out: TextIO, bundle: Bundle, tenant: str | None, settings: Settings
) -> None:
    """Judge each JSON line; a line that cannot be judged gets one error line (with its id if readable)."""
    from maestro.estimates import Prices
    from maestro.policy.engine import evaluate

    prices = Prices.of(settings)
    decoder = msgspec.json.Decoder(TaskRequest)
    encoder = msgspec.json.Encoder()
    for number, data in enumerate(lines, 1):
        if not data.strip():
            continue
        try:
            data.decode("utf-8")
            request = decoder.decode(data)
        except UnicodeDecodeError as exc:
            result = _error(number, data, f"invalid request: not UTF-8 (byte {exc.start + 1})")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            result = _error(number, data, f"invalid request: {exc}")
        else:
            if tenant is not None:
                request = msgspec.structs.replace(request, tenant=tenant)
            decision = evaluate(request, len(data), bundle, prices).decision
            result = {"id": request.id, **msgspec.to_builtins(decision)}
        out.write(encoder.encode(result).decode() + "\n")
        out.flush()


class _Id(msgspec.Struct):
    id: Any = None


def _error(number: int, data: bytes, error: str) -> dict[str, Any]:
    """An error line; it names the request's id when the line is an object with a string id."""
    result: dict[str, Any] = {"line": number, "error": error}
    try:
        found = msgspec.json.decode(data.decode("utf-8", "replace"), type=_Id).id
    except (msgspec.DecodeError, msgspec.ValidationError):
        return result
    return {"id": found, **result} if isinstance(found, str) else result


async def eval_requests(settings: Settings, args: argparse.Namespace) -> int:
    """Judge each TaskRequest JSON line on stdin offline; write one Decision JSON line per request."""
    from maestro.policy.bundle import BundleError

    try:
        bundle = _bundle(args.policy)
    except BundleError as exc:
        _report(args.policy, exc, sys.stderr)
        return EXIT_INVALID
    _judge_lines(sys.stdin.buffer, sys.stdout, bundle, args.tenant, settings)
    return EXIT_OK
