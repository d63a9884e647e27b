"""Post a review's final commit statuses when its workflow ends.

A durable consumer of the workflow events: an end heard twice (a crash before the ack) posts the same
statuses twice, which GitHub keeps as one (the latest per context), so at-least-once is enough.
"""

from __future__ import annotations

from dataclasses import dataclass

from maestro import codec
from maestro.deliveries import Delivery
from maestro.errors import Retry
from maestro.github import review
from maestro.github.config import GithubConfig
from maestro.github.rest import GitHub, post_statuses
from proto.v1 import TaskRecord
from proto.v1.workflows import WORKFLOW_ENDED, WorkflowEnded, WorkflowEvents, WorkflowRecord
from services.orchestrator.reviews import statuses
from services.orchestrator.store import TaskStore
from services.orchestrator.workflows.store import WorkflowStore


@dataclass(frozen=True)
class Reporter:
    """Turns ended review workflows into commit statuses."""

    workflows: WorkflowStore
    tasks: TaskStore
    config: GithubConfig
    github: GitHub

    async def heard(self, event: WorkflowEvents, _: Delivery) -> None:
        """Post the final statuses of a webhook's review that ended; other events and workflows pass by.
        Raises Retry while GitHub cannot take them, or the workflow's record is not yet written."""
        if not isinstance(event, WorkflowEnded) or not review.is_review(event.workflow_id):
            return
        found = await self.workflows.get(event.workflow_id)
        if found is None:
            return
        record = found[0]
        if record.state not in WORKFLOW_ENDED:
            # The runner publishes the end before it writes the record: the record catches up at once.
            raise Retry(0.5, f"workflow {record.id} ended; its record does not say so yet")
        await self.report(record)

    async def report(self, record: WorkflowRecord) -> None:
        """Post the final statuses of an ended review workflow of a webhook (any other passes by); raises
        Retry while GitHub cannot take them."""
        repo, sha = record.labels.get("repo", ""), record.labels.get("commit", "")
        if record.labels.get("origin") != "github" or not sha or self.config.repository(repo) is None:
            return
        tasks: dict[str, TaskRecord] = {}
        for step in record.steps:
            stored = await self.tasks.read(step.task_id)
            if stored is not None:
                tasks[step.name] = codec.decode(TaskRecord, stored)
        ended = statuses.final(record, tasks, self.config.link(record.id))
        await post_statuses(self.github, repo, sha, ended)
