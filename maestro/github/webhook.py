"""What a GitHub webhook delivery asks for, decided without I/O: the parts of its payload a review needs,
and whether it starts one (https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request).

GitHub's payloads carry far more than proto/v1/reviews.py's GithubWebhook reads: the rest is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from proto.v1.reviews import GithubWebhook, PullRequestPushed

EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
SIGNATURE_HEADER = "X-Hub-Signature-256"
REVIEWED_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})
"""The pull_request actions that give it a head commit to review (a draft's wait for ready_for_review)."""


_decoder = msgspec.json.Decoder(GithubWebhook)


def payload(body: bytes) -> GithubWebhook:
    """Decode a delivery's body; raises msgspec.DecodeError (or ValidationError) when it is not one."""
    return _decoder.decode(body)


@dataclass(frozen=True)
class Ignored:
    """A delivery that starts nothing, and why."""

    reason: str


def pushed(event: str, hook: GithubWebhook, tenant: str, delivery: str) -> PullRequestPushed | Ignored:
    """The head commit a delivery asks to review, or why it asks for nothing; raises
    msgspec.ValidationError when the pull request's fields are not what GitHub sends (a SHA, a number)."""
    if event != "pull_request" or hook.pull_request is None:
        return Ignored(f"event {event!r} starts no review")
    if hook.action not in REVIEWED_ACTIONS:
        return Ignored(f"pull_request action {hook.action!r} starts no review")
    pr = hook.pull_request
    if pr.draft:
        return Ignored(f"pull request #{pr.number} is a draft: its review starts when it is ready for review")
    fields = {
        "tenant": tenant,
        "repo": hook.repository.full_name,
        "number": pr.number,
        "head_sha": pr.head.sha.lower(),
        "base_sha": pr.base.sha.lower(),
        "head_ref": pr.head.ref,
        "title": pr.title[:500],
        "action": hook.action,
        "delivery": delivery,
    }
    # Checked as the consumer will decode it: a payload it would refuse is refused here, to GitHub.
    return msgspec.convert(fields, PullRequestPushed)
