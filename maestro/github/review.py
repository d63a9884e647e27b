"""The review workflow of one commit, built the same way for a webhook's pull request and for
`maestro review-pr`: a reviewer step over the diff and a tester step running the test commands over the files
at that commit. Pure: whoever calls it fetched the diff and the files.

Its labels say what it proves: `repo` (`owner/name`), `commit` (the head's full SHA), `pr` (its number, when
it has one) and `origin` (`github` for a webhook's, whose statuses go back to GitHub; `local` otherwise). The
orchestrator copies a workflow's labels onto each step's task, so the tester's task carries `repo` and
`commit`: what the deploy gate looks for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from maestro import codec
from proto.v1 import ContextFile
from proto.v1.workflows import Step, Workflow

REVIEW_STEP = "review"
TEST_STEP = "test"
DIFF_PATH = "pull-request.diff"
"""Where the reviewer finds the diff in its workspace."""
ID_PREFIX = "pr-"
Origin = Literal["github", "local"]
# What a step's request carries besides its context files (prompt, labels, ids), with room to spare.
_ENVELOPE_BYTES = 16 * 1024


@dataclass(frozen=True)
class Change:
    """One commit to review: where it is, what it is compared with, and in which tenant it runs."""

    tenant: str
    repo: str
    """`owner/name` (or, for a local checkout without a remote, its directory's name)."""
    head_sha: str
    base_sha: str
    number: int = 0
    """The pull request's number (0: none, a local review)."""
    title: str = ""
    origin: Origin = "github"


class TooLarge(ValueError):
    """The files at the commit do not fit in one task request; the text says how large they are."""


def workflow_id(repo: str, number: int, head_sha: str) -> str:
    """The review workflow's id: one per repository, pull request and head commit, whoever asks how often
    (`pr-<8 hex of the repo>-<number>-<12 of the SHA>`, within a workflow id's 39 characters)."""
    digest = hashlib.sha256(repo.lower().encode()).hexdigest()[:8]
    return f"{ID_PREFIX}{digest}-{number}-{head_sha[:12].lower()}"


def is_review(workflow_id: str) -> bool:
    """Whether a workflow id is a review workflow's (a cheap test before reading its record)."""
    return workflow_id.startswith(ID_PREFIX)


def labels_of(change: Change) -> dict[str, str]:
    """The labels of a change's review workflow (and so of each of its steps' tasks)."""
    labels = {"repo": change.repo, "commit": change.head_sha.lower(), "origin": change.origin}
    if change.number:
        labels["pr"] = str(change.number)
    return labels


def build(
    change: Change,
    diff: str,
    files: Mapping[str, str],
    test_commands: Sequence[str],
    *,
    max_request_bytes: int,
) -> Workflow:
    """The review workflow of `change`: the reviewer over `diff`, and, when there are test commands, the
    tester over `files` (path -> text at the head commit). Raises TooLarge when a step's files exceed what
    one task request may carry (`max_request_bytes`)."""
    what = f"pull request #{change.number} of {change.repo}" if change.number else change.repo
    title = f" ({change.title})" if change.title else ""
    span = f"{change.base_sha[:12]}..{change.head_sha[:12]}"
    review = Step(
        name=REVIEW_STEP,
        role="reviewer",
        prompt=f"Review the changes of {what}{title}, {span}: the diff is in {DIFF_PATH}.",
        context=[ContextFile(path=DIFF_PATH, content=diff)],
    )
    steps = [review]
    if test_commands:
        steps.append(
            Step(
                name=TEST_STEP,
                role="tester",
                prompt=f"Run the tests of {change.repo} at commit {change.head_sha}.",
                context=[ContextFile(path=path, content=files[path]) for path in sorted(files)],
                commands=list(test_commands),
            )
        )
    for step in steps:
        size = len(codec.encode(step.context)) + _ENVELOPE_BYTES
        if size > max_request_bytes:
            raise TooLarge(
                f"the {step.name} step's files at {change.head_sha[:12]} are about {size} bytes; a task "
                f"request may carry {max_request_bytes} (MAESTRO_MAX_REQUEST_BYTES)"
            )
    return Workflow(
        id=workflow_id(change.repo, change.number, change.head_sha),
        tenant=change.tenant,
        steps=steps,
        labels=labels_of(change),
    )
