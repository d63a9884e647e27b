"""Start the review of a pull request's head commit: fetch its diff and files from GitHub, judge the added
lines with check-pr under the bundle in force, post that status and upload its SARIF, cancel the review of
the pull request's previous head, post pending statuses and start the review workflow.

A newer head cancels the reviews of the older ones of its pull request; a review started while a newer head's
looked for them cancels itself, as the pull request's head (asked of GitHub after it started) is another.

Every effect may be repeated (a SIGKILL anywhere redelivers the message): the workflow's id is one per
repository, pull request and head commit, a cancel of an ended workflow is skipped, and a status posted
twice is one status. A redelivery finding the workflow started does nothing more, so it never turns a
final status back to pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from maestro import topics
from maestro.bus import Bus
from maestro.claims import IdConflict
from maestro.deliveries import Delivery
from maestro.errors import Reject, Retry
from maestro.github import diff as diffs
from maestro.github import review, tarball
from maestro.github.config import GithubConfig, Repository
from maestro.github.rest import GitHub, GitHubError, post_statuses
from maestro.listing import Query
from maestro.policy import bundle_store, check_pr, sarif
from proto.v1.reviews import PullRequestPushed
from proto.v1.workflows import WORKFLOW_ENDED
from services.orchestrator.reviews import statuses
from services.orchestrator.reviews.reporter import Reporter
from services.orchestrator.workflows.runner import Cancel, Ended, Runner

log = logging.getLogger(__name__)

T = TypeVar("T")

_ACTIVE = frozenset({"running", "paused"})
"""A workflow in these states has not ended: a newer head cancels it."""


@dataclass(frozen=True)
class Starter:
    """Starts reviews for one GitHub connection."""

    bus: Bus
    runner: Runner
    config: GithubConfig
    github: GitHub
    reporter: Reporter

    async def start(self, pushed: PullRequestPushed, delivery: Delivery) -> None:
        """Review `pushed`'s head commit; raises Retry while GitHub or the bundle cannot be read, Reject
        when the repository is not connected (any more) to the message's tenant."""
        (tenant,) = topics.HOOKS.values(delivery.subject)
        repo = self.config.repository(pushed.repo)
        if tenant != pushed.tenant or repo is None or repo.tenant != tenant:
            raise Reject(f"{pushed.repo} is not connected to tenant {tenant}")
        workflow_id = review.workflow_id(pushed.repo, pushed.number, pushed.head_sha)
        context = {"tenant": tenant, "workflow_id": workflow_id}
        head = await self._github(self.github.pull_head(pushed.repo, pushed.number))
        await self._cancel_older(pushed, head)
        if head != pushed.head_sha:
            log.info("%s#%d: %s was superseded by %s", pushed.repo, pushed.number, pushed.head_sha, head)
            return
        if await self.runner.store.get(workflow_id) is not None:
            return  # started before this delivery (or a copy of it): its statuses are posted
        await delivery.keepalive()
        diff = await self._github(self.github.diff(pushed.repo, pushed.base_sha, pushed.head_sha))
        archive = await self._github(self.github.tarball(pushed.repo, pushed.head_sha))
        files = tarball.text_files(archive)
        await delivery.keepalive()
        await self._check_pr(pushed, repo, diff, files, self.config.link(workflow_id))
        change = review.Change(
            tenant=tenant,
            repo=pushed.repo,
            head_sha=pushed.head_sha,
            base_sha=pushed.base_sha,
            number=pushed.number,
            title=pushed.title,
        )
        link = self.config.link(workflow_id)
        try:
            workflow = review.build(
                change, diff, files, repo.test_commands, max_request_bytes=self.bus.settings.max_request_bytes
            )
        except review.TooLarge as exc:
            log.warning("%s#%d: not reviewed: %s", pushed.repo, pushed.number, exc, extra=context)
            refused = statuses.refused([review.REVIEW_STEP, review.TEST_STEP], f"not run: {exc}", link)
            await post_statuses(self.github, pushed.repo, pushed.head_sha, refused)
            return
        steps = [step.name for step in workflow.steps]
        await post_statuses(
            self.github, pushed.repo, pushed.head_sha, statuses.pending(workflow_id, steps, link)
        )
        try:
            record = await self.runner.start(workflow)
        except IdConflict as exc:
            raise Reject(str(exc)) from None
        if record.state in WORKFLOW_ENDED:
            # Ended already (refused at once, or a copy of this message started it and it ran to its end):
            # its final statuses come after the pending ones posted above, whoever posted them before.
            await self.reporter.report(record)
        log.info("%s#%d: review started", pushed.repo, pushed.number, extra=context)
        # A newer head's review may have looked for older ones before this one was stored: asked again
        # now, GitHub names the newer head, and this review is cancelled here instead.
        head = await self._github(self.github.pull_head(pushed.repo, pushed.number))
        if head != pushed.head_sha:
            await self._cancel_older(pushed, head)

    async def _github(self, call: Awaitable[T]) -> T:
        """What a GitHub call answers; Retry when it may answer later, Reject when it refused for good."""
        try:
            return await call
        except GitHubError as exc:
            if exc.transient:
                raise Retry(5.0, str(exc)) from None
            raise Reject(str(exc)) from None

    async def _check_pr(
        self, pushed: PullRequestPushed, repo: Repository, diff: str, files: dict[str, str], link: str | None
    ) -> None:
        """Judge the added lines under the bundle the guards judge by; post the status, upload the SARIF."""
        try:
            bundle = (await bundle_store.in_force(self.bus.js)).bundle
        except bundle_store.StoredBundleError as exc:
            raise Retry(30.0, f"the stored policy bundle does not validate: {exc}") from None
        changed = check_pr.without(diffs.changed_files(diff, files), repo.exclude)
        # The engine is CPU work (regexes over every added line): off the loop the consumers share.
        result = await asyncio.to_thread(check_pr.review, changed, bundle, pushed.base_sha[:12])
        await post_statuses(self.github, pushed.repo, pushed.head_sha, [statuses.check_pr(result, link)])
        ref = f"refs/pull/{pushed.number}/head"
        try:
            await self.github.upload_sarif(pushed.repo, pushed.head_sha, ref, sarif.document(result))
        except GitHubError as exc:
            # Code scanning off (403/404) or not in the plan: the status above still says what was found.
            log.warning("%s#%d: SARIF not uploaded: %s", pushed.repo, pushed.number, exc)

    async def _cancel_older(self, pushed: PullRequestPushed, head: str) -> None:
        """Cancel the reviews of this pull request's other heads that have not ended."""
        labels = {"repo": pushed.repo, "pr": str(pushed.number), "origin": "github"}
        page = await self.runner.store.scan(Query(tenant=pushed.tenant, states=_ACTIVE, labels=labels))
        for record in page.items:
            if record.labels.get("commit") == head or record.state in WORKFLOW_ENDED:
                continue
            try:
                await self.runner.change(record.id, Cancel("github", f"superseded by {head[:12]}"))
            except Ended:
                continue
            log.info("%s#%d: review %s cancelled", pushed.repo, pushed.number, record.id)
