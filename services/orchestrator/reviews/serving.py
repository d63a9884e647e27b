"""The orchestrator's part in pull request reviews: two durable consumers on one GitHub session."""

from __future__ import annotations

import asyncio

from maestro import topics
from maestro.bus import Bus
from maestro.deliveries import Consumer
from maestro.github.config import from_settings
from maestro.github.rest import open_github
from proto.v1.reviews import PullRequestPushed
from proto.v1.workflows import WorkflowEvents
from services.orchestrator.reviews.reporter import Reporter
from services.orchestrator.reviews.starter import Starter
from services.orchestrator.store import TaskStore
from services.orchestrator.workflows.runner import Runner

ORIGIN = "orchestrator-reviews"

PUSHES: Consumer[PullRequestPushed] = Consumer(
    stream=topics.STREAM_HOOKS,
    durable=topics.DURABLE_ORCHESTRATOR_REVIEWS,
    filter_subject=topics.HOOKS.all,
    type=PullRequestPushed,
    origin=ORIGIN,
)

ENDS: Consumer[WorkflowEvents] = Consumer(
    stream=topics.STREAM_EVENTS,
    durable=topics.DURABLE_ORCHESTRATOR_REVIEW_ENDS,
    filter_subject=topics.WORKFLOW_EVENTS.all,
    type=WorkflowEvents,  # type: ignore[arg-type]
    origin=ORIGIN,
)


async def serve_reviews(bus: Bus, runner: Runner, tasks: TaskStore) -> None:
    """Start a review for each pull request pushed and report each one that ends, until the bus stops;
    returns at once when no GitHub repository is connected (MAESTRO_GITHUB_CONFIG)."""
    config = from_settings(bus.settings)
    if config is None:
        return
    async with open_github(config) as github, asyncio.TaskGroup() as group:
        reporter = Reporter(runner.store, tasks, config, github)
        starter = Starter(bus, runner, config, github, reporter)
        group.create_task(bus.consumers.consume(PUSHES, starter.start), name="review-starts")
        group.create_task(bus.consumers.consume(ENDS, reporter.heard), name="review-ends")
