"""`maestro gate deploy|log`: ask the deploy gate about a commit from a pipeline, and read its decisions back.

`deploy` prints one line and exits 0 only when the commit may be deployed: `allowed: <why>`, else
`refused (<outcome>): <why>` and exit 1, so that `maestro gate deploy ... && ./deploy.sh` is the whole gate.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from maestro import arguments, codec, gates
from maestro.access.local_token import local_subject
from maestro.client import open_client
from maestro.settings import Settings
from maestro.terminal import printable
from proto.v1.gates import GateAnswer, GateDecided

EXIT_OK = 0
EXIT_REFUSED = 1

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def seconds(text: str) -> float:
    """A duration given as `90s`, `30m`, `24h`, `7d` (or a plain number of seconds), in seconds."""
    found = _SPAN.match(text.strip())
    if not found or float(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a duration (90s, 30m, 24h, 7d): {text[:40]!r}")
    return float(found.group(1)) * _SECONDS[found.group(2)]


def register(sub: Any) -> None:
    """Add the `gate` command group to the CLI's subparsers."""
    gate = sub.add_parser("gate", help="the deploy gate: may this commit be deployed? and its decisions")
    commands = gate.add_subparsers(dest="gate_command", required=True, metavar="SUBCOMMAND")
    deploy = commands.add_parser(
        "deploy",
        help="exit 0 only when a tester task for exactly this commit succeeded within the max age",
        description="Exit 0 only when a tester task of the tenant labelled repo=REPO and commit=SHA "
        "succeeded within the max age, under a guard decision naming its policy bundle; otherwise print why "
        "in one line (no test task, it failed, it is stale, it is still running, it was never allowed) and "
        "exit 1. Every answer is recorded on the gate's stream with who asked (`maestro gate log`).",
    )
    deploy.add_argument("--repo", required=True, help="the repository, as the tester tasks' `repo` label")
    deploy.add_argument("--commit", required=True, metavar="SHA", help="the full commit SHA (40 hex digits)")
    deploy.add_argument("--tenant", required=True, type=arguments.tenant, help="the tenant whose tasks count")
    deploy.add_argument(
        "--max-age",
        type=seconds,
        default=gates.DEFAULT_MAX_AGE_S,
        metavar="AGE",
        help="how long ago, at most, the proving task finished: 90m, 24h, 7d (default 24h)",
    )
    deploy.add_argument(
        "--wait", action="store_true", help="while there is no tester task yet or it still runs, wait for it"
    )
    deploy.add_argument(
        "--timeout",
        type=seconds,
        default=1800.0,
        metavar="AGE",
        help="how long --wait waits at most: 90s, 30m (default 30m)",
    )
    deploy.add_argument("--by", default=None, help="who asks, as recorded (default: you, user@host)")
    deploy.add_argument("--json", action="store_true", help="print the whole answer as JSON")
    deploy.set_defaults(run=_deploy)

    log = commands.add_parser(
        "log",
        help="the gate's recorded decisions, newest first",
        description="The deploy gate's decisions in a tenant, newest first: when, who asked (and how), the "
        "outcome, the commit, the task that proved it with its policy bundle, and why.",
    )
    log.add_argument("--tenant", required=True, type=arguments.tenant, help="whose decisions")
    log.add_argument("--repo", help="only those about this repository")
    log.add_argument("--commit", metavar="SHA", help="only those about this commit")
    log.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    log.add_argument("--json", action="store_true", help="print each decision as a JSON line")
    log.set_defaults(run=_log)


def one_line(answer: GateAnswer) -> str:
    """What `gate deploy` prints: `allowed: ...` or `refused (<outcome>): ...`."""
    head = "allowed" if answer.allowed else f"refused ({answer.outcome})"
    return printable(f"{head}: {answer.reason}")


def described(decided: GateDecided) -> str:
    """One decision as `gate log` prints it."""
    answer = decided.answer
    at = decided.at.isoformat(timespec="seconds")
    proof = f" task={answer.task_id}" if answer.task_id else ""
    if answer.policy_hash:
        proof += f" policy={answer.policy_version or '?'}({answer.policy_hash[:12]})"
    line = (
        f"{at}  {answer.outcome:<11} {answer.repo}@{answer.commit[:12]} by {decided.by} ({decided.via})"
        f"{proof}: {answer.reason}"
    )
    return printable(line)


async def _deploy(settings: Settings, args: argparse.Namespace) -> int:
    async with open_client(settings) as client:
        answer = await client.deploy_gate(
            tenant=args.tenant,
            repo=args.repo,
            commit=args.commit.strip().lower(),
            max_age_s=args.max_age,
            wait_s=args.timeout if args.wait else None,
            by=args.by or local_subject(),
            via="cli",
        )
    print(codec.encode(answer).decode() if args.json else one_line(answer))
    return EXIT_OK if answer.allowed else EXIT_REFUSED


async def _log(settings: Settings, args: argparse.Namespace) -> int:
    commit = args.commit.strip().lower() if args.commit else None
    async with open_client(settings) as client:
        found = await client.gate_decisions(args.tenant, repo=args.repo, commit=commit, limit=args.limit)
    for decided in found:
        print(codec.encode(decided).decode() if args.json else described(decided))
    return EXIT_OK
