"""Pull requests from GitHub's webhook, on their way to a review workflow, and what the webhook answers."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import Tenant

Sha = Annotated[str, Meta(pattern=r"^[0-9a-f]{40}$", description="a full commit SHA, lowercase hex")]
RepoName = Annotated[
    str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$", description="`owner/name`")
]


class GithubRepository(Message, frozen=True):
    """The repository a webhook delivery is about."""

    full_name: RepoName


class GithubCommitRef(Message, frozen=True):
    """A pull request's head or base: its commit and branch."""

    sha: str
    ref: str = ""


class GithubPullRequest(Message, frozen=True):
    """The parts of a delivery's `pull_request` a review reads."""

    number: int
    head: GithubCommitRef
    base: GithubCommitRef
    draft: bool = False
    title: str = ""


class GithubWebhook(Message, frozen=True):
    """The parts of a GitHub webhook delivery's payload Maestro reads; GitHub sends far more, and more with
    time: every other field is ignored (https://docs.github.com/en/webhooks/webhook-events-and-payloads)."""

    repository: GithubRepository
    action: str = ""
    pull_request: GithubPullRequest | None = None


class PullRequestPushed(Message, frozen=True):
    """A pull request got a head commit to review (opened, pushed to, reopened, or ready for review), as the
    orchestrator's webhook receiver verified it; the orchestrator reviews that commit."""

    tenant: Tenant
    repo: RepoName
    number: Annotated[int, Meta(ge=1)]
    head_sha: Sha
    base_sha: Sha
    head_ref: str = ""
    """The branch the head commit is on (`feature/x`): code scanning files the SARIF under it."""
    title: str = ""
    action: str = ""
    """The webhook's action: opened, synchronize, reopened or ready_for_review."""
    delivery: str = ""
    """GitHub's X-GitHub-Delivery of the webhook that brought it."""


HookOutcome = Literal["accepted", "ignored", "seen", "pong"]


class HookAnswer(Message, frozen=True):
    """What POST /v1/hooks/github answers a webhook GitHub signed correctly."""

    outcome: HookOutcome
    """`accepted`: a review starts; `ignored`: nothing to do for it; `seen`: that delivery came before and
    started what it had to; `pong`: the answer to GitHub's ping."""
    detail: str = ""
    delivery: str = ""
    workflow_id: str = ""
    """The review workflow an accepted delivery starts."""
