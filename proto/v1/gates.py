"""The deploy gate: its answer for one commit, and the record of every decision it makes.

A commit may be deployed when a tester task for exactly that commit (labels `repo` and `commit`) succeeded
recently enough, under a guard decision that names the policy bundle in force then. Every time someone asks,
the answer is recorded as a GateDecided on `maestro.v1.gate.<tenant>`: who asked, what was decided and why,
and which task proved it, so that an audit can show why a deploy went through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import END, TaskId, Tenant
from proto.v1.tasks import TaskState

REPO_LABEL = "repo"
"""The label naming a tester task's repository (`acme/widgets`, or any string that names one)."""
COMMIT_LABEL = "commit"
"""The label naming the commit a tester task tests: its full object name, lowercase hex."""

COMMIT_PATTERN = r"^[0-9a-f]{40}(?:[0-9a-f]{24})?" + END
"""A full commit object name: 40 hex digits (SHA-1), or 64 (SHA-256 repositories), lowercase."""
REPO_PATTERN = r"^[!-~]{1,256}" + END
"""A repository's name as a label holds it: printable ASCII without spaces, at most 256 characters."""
MAX_AGE_LIMIT_S = 366 * 86_400.0
"""The oldest success a gate may be asked to accept: a year."""

Repo = Annotated[
    str, Meta(pattern=REPO_PATTERN, description="the repository, as the tester task's `repo` label")
]
Commit = Annotated[
    str, Meta(pattern=COMMIT_PATTERN, description="the full commit SHA (40 or 64 hex digits, lowercase)")
]
MaxAge = Annotated[
    float, Meta(gt=0, le=MAX_AGE_LIMIT_S, description="how long ago, at most, the proving task finished (s)")
]

GateOutcome = Literal["allowed", "no_test", "running", "failed", "stale", "not_allowed"]
"""What the gate decided: `allowed` (the only one that lets a deploy through); `no_test` (no tester task for
that commit); `running` (the newest has not finished: pending, queued or running); `failed` (it failed, timed
out or was cancelled, or a failure came after the last success); `stale` (it succeeded, longer ago than the
max age); `not_allowed` (the guard rejected it or it awaits approval, or no guard decision is on record)."""


class GateAnswer(Message, frozen=True):
    """The deploy gate's answer for one commit (GET /v1/gates/deploy, `maestro gate deploy`): whether it may
    be deployed, and why in one line."""

    allowed: bool
    outcome: GateOutcome
    reason: str
    """One line: what the gate found (the task, its state and when), for a person reading a pipeline's log."""
    tenant: Tenant
    repo: Repo
    commit: Commit
    max_age_s: MaxAge
    task_id: TaskId | None = None
    """The task the answer rests on: the one that proved the commit when allowed, else the one the reason
    names (None: no tester task)."""
    task_state: TaskState | None = None
    finished_at: datetime | None = None
    """When that task finished (None: it has not)."""
    policy_version: str = ""
    """The version of the policy bundle the guard judged that task by (empty when none is on record)."""
    policy_hash: str = ""
    """The sha256 of that bundle, as its decision names it."""


GateAsker = Literal["http", "cli", "sdk"]


class GateDecided(Message, frozen=True):
    """One decision of the deploy gate, as recorded on `maestro.v1.gate.<tenant>` for an audit."""

    id: str
    """This decision's id (also its Nats-Msg-Id)."""
    at: datetime
    by: str
    """Who asked: the API token's subject over HTTP, the user (or `--by`) on the CLI."""
    via: GateAsker
    answer: GateAnswer
    gate: Literal["deploy"] = "deploy"
