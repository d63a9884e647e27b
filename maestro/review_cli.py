"""`maestro review-pr`: the review a pull request's webhook starts, from a local git checkout, for teams
without webhooks (and GitLab or Gitea users): the reviewer over the diff since the merge base, the tester
running the given commands over the files at HEAD (maestro/github/review.py builds both, as the webhook's).

Its labels: `repo` is the `origin` remote's `owner/name` (else the checkout's directory name), `commit` is
HEAD's SHA, `origin` is `local`; so `maestro gate deploy --repo R --commit SHA` counts its tester. Running it
again on the same HEAD finds the same workflow (its id is one per repository and commit).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from maestro import arguments, claims
from maestro.client import open_client
from maestro.errors import MaestroError, NotFound
from maestro.git import git, merge_base
from maestro.github import review, tarball
from maestro.settings import Settings
from maestro.terminal import printable
from proto.v1.workflows import Workflow, WorkflowRecord

EXIT_OK = 0
EXIT_FAILED = 1

# git@github.com:acme/widgets.git, https://github.com/acme/widgets(.git), ssh://git@host:22/acme/widgets.git
_REMOTE = re.compile(r"[:/]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


class ReviewError(MaestroError):
    """The review cannot be started as asked; the text says why."""


def register(sub: Any) -> None:
    """Add `review-pr` to the CLI's subparsers."""
    command = sub.add_parser(
        "review-pr",
        help="review this checkout's HEAD as a pull request's webhook would (reviewer and tester)",
        description="Start the review workflow of HEAD: a reviewer over the diff since the merge base with "
        "--base, and a tester running each --command over the files at HEAD. Prints the workflow's id.",
    )
    command.add_argument("--repo", default=".", help="the git checkout (default: the current directory)")
    command.add_argument(
        "--base",
        help="review the changes since the merge base with this ref (default: origin/main, main, HEAD~1)",
    )
    command.add_argument(
        "--tenant", required=True, type=arguments.tenant, help="the tenant it runs (and is paid) in"
    )
    command.add_argument(
        "--command",
        dest="commands",
        action="append",
        default=[],
        metavar="CMD",
        help="a test command the tester runs at HEAD (repeatable); none: no test step",
    )
    command.add_argument(
        "--wait", action="store_true", help="wait for it to end; exit 0 only when it succeeded"
    )
    command.add_argument(
        "--timeout", type=float, default=900.0, metavar="SECONDS", help="how long --wait waits (default 900)"
    )
    command.set_defaults(run=run)


def repo_name(checkout: Path) -> str:
    """`owner/name` of the `origin` remote, or the checkout's directory name when it has none."""
    try:
        url = git(checkout, "remote", "get-url", "origin").decode().strip()
    except MaestroError:
        url = ""
    found = _REMOTE.search(url)
    if found:
        return f"{found.group(1)}/{found.group(2)}"
    top = git(checkout, "rev-parse", "--show-toplevel").decode().strip()
    return Path(top).name


def local_review(
    checkout: Path, base_ref: str | None, tenant: str, commands: list[str], limit: int
) -> Workflow:
    """The review workflow of `checkout`'s HEAD; raises GitError, or ReviewError when its files are too
    large for a task request."""
    head = git(checkout, "rev-parse", "HEAD").decode().strip()
    base = merge_base(checkout, base_ref)
    diff = git(checkout, "diff", "--no-color", "--no-ext-diff", base, "HEAD").decode("utf-8", "replace")
    files = tarball.text_files(git(checkout, "archive", "--format=tar", "HEAD"), strip_top=False)
    change = review.Change(
        tenant=tenant, repo=repo_name(checkout), head_sha=head, base_sha=base, origin="local"
    )
    try:
        return review.build(change, diff, files, commands, max_request_bytes=limit)
    except review.TooLarge as exc:
        raise ReviewError(str(exc)) from None


def outcome(record: WorkflowRecord) -> list[str]:
    """One line per step of an ended review, then the workflow's end."""
    lines = []
    for step in record.steps:
        why = step.error.splitlines()[0] if step.error.strip() else ""
        lines.append(f"{step.name}: {step.state}" + (f": {why}" if why else ""))
    lines.append(f"workflow {record.id}: {record.state}" + (f": {record.reason}" if record.reason else ""))
    return [printable(line) for line in lines]


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Start the review of HEAD, print its workflow id; with --wait, each step's outcome."""
    workflow = local_review(
        Path(args.repo), args.base, args.tenant, args.commands, settings.max_request_bytes
    )
    if not args.commands:
        print("maestro: note: no --command: the review has no test step", file=sys.stderr)
    async with open_client(settings) as client:
        try:
            found: WorkflowRecord | None = await client.workflow(workflow.id)
        except NotFound:
            found = None
        if found is not None and found.digest != claims.digest(workflow):
            raise ReviewError(
                f"HEAD was reviewed as workflow {workflow.id} with other steps or commands; "
                "commit again (or review it as it was)"
            )
        workflow_id = await client.run_workflow(workflow)
        print(workflow_id, flush=True)
        if not args.wait:
            return EXIT_OK
        try:
            record = await client.wait_workflow(workflow_id, timeout=args.timeout)
        except TimeoutError:
            raise ReviewError(f"workflow {workflow_id} did not end within {args.timeout:.0f}s") from None
    print("\n".join(outcome(record)))
    return EXIT_OK if record.state == "succeeded" else EXIT_FAILED
