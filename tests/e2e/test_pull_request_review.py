"""Pull requests → review, end to end: a real git repository, a fake GitHub speaking its REST shapes, the
whole mesh on a real nats-server. A signed webhook starts the review workflow, its statuses and SARIF reach
GitHub, and the deploy gate allows the commit once its tester task succeeded; a new push cancels the old
review; `maestro review-pr` runs the same review from a local checkout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from maestro import topics
from maestro.client import Client
from maestro.errors import NotFound
from maestro.github import review, signature
from maestro.settings import Settings
from proto.v1 import TaskRecord
from proto.v1.reviews import PullRequestPushed
from tests.e2e.conftest import recorded
from tests.e2e.test_approval_flow import Mesh, start
from tests.maestro.command import maestro
from tests.support.fake_github import TOKEN, FakeGitHub, serving

REPO = "acme/widgets"
SECRET = b"acme-webhook-secret"
TEST_COMMAND = "sh check.sh"


def git(checkout: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args]
    return subprocess.run(command, cwd=checkout, check=True, capture_output=True, text=True).stdout.strip()


def commit(checkout: Path, files: dict[str, str], message: str) -> str:
    for path, text in files.items():
        (checkout / path).write_text(text)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", message)
    return git(checkout, "rev-parse", "HEAD")


def waiting_check(release: Path) -> str:
    """A test script that passes once `release` exists (so a test decides when the tester finishes)."""
    return (
        f"i=0; while [ ! -e {release} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n"
        f"[ -e {release} ] && grep -q 'def widget' widgets.py\n"
    )


@dataclass
class World:
    mesh: Mesh
    github: FakeGitHub
    checkout: Path
    base: str
    release: Path

    async def deliver(
        self, event: str, payload: dict[str, Any], *, delivery: str | None = None, secret: bytes = SECRET
    ) -> tuple[int, dict[str, Any]]:
        body = json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json",
        }
        if secret:
            headers["X-Hub-Signature-256"] = signature.sign(secret, body)
        url = f"http://127.0.0.1:{self.mesh.port}/v1/hooks/github"
        async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def reviews(self) -> list[str]:
        found = await self.mesh.client.workflows(tenant="acme", labels={"repo": REPO})
        return sorted(record.id for record in found.items)


def pull_request(action: str, number: int, head: str, base: str, *, draft: bool = False) -> dict[str, Any]:
    return {
        "action": action,
        "number": number,
        "repository": {"full_name": REPO, "private": True},
        "pull_request": {
            "number": number,
            "title": "Widgets learn to spin",
            "draft": draft,
            "head": {"sha": head, "ref": "feature"},
            "base": {"sha": base, "ref": "main"},
        },
        "sender": {"login": "dev"},
    }


@pytest.fixture
async def world(settings: Settings, tmp_path: Path) -> AsyncIterator[World]:
    checkout = tmp_path / "widgets"
    checkout.mkdir()
    git(checkout, "init", "-q", "-b", "main")
    release = tmp_path / "release"
    base = commit(
        checkout,
        {"widgets.py": "def widget():\n    return 1\n", "check.sh": "grep -q 'def widget' widgets.py\n"},
        "widgets",
    )
    git(checkout, "checkout", "-q", "-b", "feature")
    (tmp_path / "acme.secret").write_text(SECRET.decode() + "\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    async with AsyncExitStack() as stack:
        github = await stack.enter_async_context(serving(FakeGitHub(repos={REPO: checkout})))
        config = tmp_path / "github.yaml"
        config.write_text(
            f"api_url: {github.url}\n"
            f"token_file: {tmp_path / 'token'}\n"
            "tenants:\n"
            f"  acme: {{webhook_secret_file: {tmp_path / 'acme.secret'}}}\n"
            "repositories:\n"
            f"  {REPO}: {{tenant: acme, test_commands: ['{TEST_COMMAND}']}}\n"
        )
        mesh = await start(settings.with_(github_config=str(config)), stack)
        yield World(mesh, github, checkout, base, release)


async def handled(world: World, within: float = 10.0) -> None:
    """Until the orchestrator has handled (acked) every pull request queued: the work queue is empty."""
    async with asyncio.timeout(within):
        while True:
            if not (await world.mesh.bus.js.stream_info(topics.STREAM_HOOKS)).state.messages:
                return
            await asyncio.sleep(0.05)


async def running(world: World, task_id: str, within: float = 15.0) -> None:
    """Until the task's record says it runs (its tester waits for the test to release it)."""
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(NotFound):
                if (await world.mesh.client.get(task_id)).state == "running":
                    return
            await asyncio.sleep(0.05)


async def step_task(world: World, workflow_id: str) -> TaskRecord:
    return await world.mesh.client.get(f"{workflow_id}-{review.TEST_STEP}")


async def test_a_signed_pull_request_is_reviewed_and_its_statuses_and_sarif_reach_github(
    world: World,
) -> None:
    head = commit(
        world.checkout,
        {"widgets.py": "def widget():\n    return 2\n", "check.sh": waiting_check(world.release)},
        "spin",
    )
    world.github.pulls[(REPO, 7)] = head
    status, answer = await world.deliver(
        "pull_request", pull_request("opened", 7, head, world.base), delivery="d-1"
    )
    workflow_id = review.workflow_id(REPO, 7, head)
    assert (status, answer["outcome"], answer["workflow_id"]) == (202, "accepted", workflow_id)

    # Pending while the tester runs, and the gate says no: its test task has not succeeded yet.
    await world.github.until(lambda: world.github.latest(head).get("maestro/test") == "pending")
    assert world.github.latest(head)["maestro/check-pr"] == "success"
    refused = await world.mesh.client.deploy_gate(tenant="acme", repo=REPO, commit=head)
    assert (refused.allowed, refused.outcome) in {(False, "no_test"), (False, "running")}, refused
    await running(world, f"{workflow_id}-{review.TEST_STEP}")
    refused = await recorded(
        lambda: world.mesh.client.deploy_gate(tenant="acme", repo=REPO, commit=head),
        lambda answer: answer.outcome != "no_test",
    )
    assert (refused.allowed, refused.outcome) == (False, "running"), refused

    # A redelivery, and another delivery for the same head, start nothing new.
    again = await world.deliver("pull_request", pull_request("opened", 7, head, world.base), delivery="d-1")
    assert again[0] == 200 and again[1]["outcome"] == "seen"
    await world.deliver("pull_request", pull_request("reopened", 7, head, world.base))

    world.release.touch()
    record = await world.mesh.client.wait_workflow(workflow_id, timeout=60)
    assert record.state == "succeeded", record
    assert await world.reviews() == [workflow_id]
    await world.github.until(
        lambda: (
            world.github.latest(head)
            == {s: "success" for s in ("maestro/check-pr", "maestro/review", "maestro/test")}
        )
    )
    tests = [s for s in world.github.statuses(head) if s["context"] == "maestro/test"]
    assert tests[0]["state"] == "pending" and tests[-1]["state"] == "success"
    assert tests[-1]["description"].startswith("1 of 1 commands passed")

    (upload,) = world.github.sarifs()[:1]
    assert (upload["commit_sha"], upload["ref"]) == (head, "refs/pull/7/head")
    assert (
        upload["log"]["version"] == "2.1.0"
        and upload["log"]["runs"][0]["tool"]["driver"]["name"] == "maestro-guard"
    )

    tester = await step_task(world, workflow_id)
    assert tester.state == "succeeded" and tester.role == "tester"
    assert (tester.labels["repo"], tester.labels["commit"], tester.labels["pr"]) == (REPO, head, "7")
    allowed = await world.mesh.client.deploy_gate(tenant="acme", repo=REPO, commit=head)
    assert (allowed.allowed, allowed.task_id) == (True, tester.id), allowed

    # The same pull request heard again after its review ended (a redelivery after a crash before the ack)
    # starts nothing and never turns a final status back to pending.
    posted = len(world.github.statuses(head))
    pushed = PullRequestPushed(
        tenant="acme",
        repo=REPO,
        number=7,
        head_sha=head,
        base_sha=world.base,
        action="opened",
        delivery="d-1",
    )
    await world.mesh.bus.streams.publish(topics.HOOKS.at("acme"), pushed, msg_id="redelivered-after-a-crash")
    await handled(world)
    assert await world.reviews() == [workflow_id]
    assert world.github.statuses(head)[posted:] == []


async def test_a_bad_or_missing_signature_is_refused_and_starts_nothing(world: World) -> None:
    head = commit(world.checkout, {"widgets.py": "def widget():\n    return 3\n"}, "three")
    world.github.pulls[(REPO, 8)] = head
    payload = pull_request("opened", 8, head, world.base)
    status, answer = await world.deliver("pull_request", payload, secret=b"globex-webhook-secret")
    assert status == 401 and "X-Hub-Signature-256" in answer["error"]
    status, answer = await world.deliver("pull_request", payload, secret=b"")
    assert (status, answer["field"]) == (400, "X-Hub-Signature-256")
    unknown = {**payload, "repository": {"full_name": "acme/gadgets"}}
    status, answer = await world.deliver("pull_request", unknown)
    assert status == 404 and "acme/gadgets" in answer["error"]
    status, answer = await world.deliver(
        "ping", {"zen": "Keep it simple.", "repository": {"full_name": REPO}}
    )
    assert (status, answer["outcome"]) == (200, "pong")
    status, answer = await world.deliver(
        "pull_request", pull_request("opened", 8, head, world.base, draft=True)
    )
    assert (status, answer["outcome"]) == (202, "ignored") and "draft" in answer["detail"]

    stream = await world.mesh.bus.js.stream_info("MAESTRO_HOOK")
    assert stream.state.messages == 0 and world.github.calls == []
    assert await world.reviews() == []


async def test_a_new_head_cancels_the_review_of_the_one_before(world: World) -> None:
    first = commit(
        world.checkout,
        {"widgets.py": "def widget():\n    return 4\n", "check.sh": waiting_check(world.release)},
        "slow",
    )
    world.github.pulls[(REPO, 9)] = first
    await world.deliver("pull_request", pull_request("opened", 9, first, world.base))
    await world.github.until(lambda: world.github.latest(first).get("maestro/test") == "pending")

    second = commit(world.checkout, {"check.sh": "grep -q 'def widget' widgets.py\n"}, "quick")
    world.github.pulls[(REPO, 9)] = second
    status, _ = await world.deliver("pull_request", pull_request("synchronize", 9, second, world.base))
    assert status == 202

    old = await world.mesh.client.wait_workflow(review.workflow_id(REPO, 9, first), timeout=30)
    new = await world.mesh.client.wait_workflow(review.workflow_id(REPO, 9, second), timeout=60)
    assert (old.state, new.state) == ("cancelled", "succeeded")
    assert (await step_task(world, old.id)).state == "cancelled"
    await world.github.until(lambda: world.github.latest(first).get("maestro/test") == "error")
    await world.github.until(lambda: world.github.latest(second).get("maestro/test") == "success")
    (cancelled,) = [
        s for s in world.github.statuses(first) if s["state"] == "error" and s["context"] == "maestro/test"
    ]
    assert second[:12] in cancelled["description"]


async def test_review_pr_reviews_a_local_checkout_and_waits_for_its_end(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    checkout = tmp_path / "gadgets"
    checkout.mkdir()
    git(checkout, "init", "-q", "-b", "main")
    git(checkout, "remote", "add", "origin", "git@github.com:acme/gadgets.git")
    commit(
        checkout,
        {"gadget.py": "def gadget():\n    return 1\n", "check.sh": "grep -q gadget gadget.py\n"},
        "one",
    )
    git(checkout, "checkout", "-q", "-b", "feature")
    head = commit(checkout, {"gadget.py": "def gadget():\n    return 2\n"}, "two")

    def review_pr(*more: str) -> subprocess.CompletedProcess[str]:
        return maestro(
            "review-pr", "--repo", str(checkout), "--tenant", "acme", *more, nats_url=settings.nats_url
        )

    done = await asyncio.to_thread(review_pr, "--command", "sh check.sh", "--wait")
    workflow_id = review.workflow_id("acme/gadgets", 0, head)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        workflow_id,
        "review: succeeded",
        "test: succeeded",
        f"workflow {workflow_id}: succeeded",
    ]
    tester = await mesh.get(f"{workflow_id}-{review.TEST_STEP}")
    assert tester.state == "succeeded"
    assert (tester.labels["repo"], tester.labels["commit"], tester.labels["origin"]) == (
        "acme/gadgets",
        head,
        "local",
    )
    assert "pr" not in tester.labels

    other = await asyncio.to_thread(review_pr, "--command", "false")
    assert other.returncode == 1 and f"HEAD was reviewed as workflow {workflow_id}" in other.stderr

    failing = commit(checkout, {"check.sh": "grep -q nothing-like-it gadget.py\n"}, "three")
    done = await asyncio.to_thread(review_pr, "--command", "sh check.sh", "--wait")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == review.workflow_id("acme/gadgets", 0, failing)
    assert lines[1] == "review: succeeded" and lines[2].startswith("test: failed")


async def test_files_beyond_the_request_limit_fail_the_statuses_and_start_nothing(world: World) -> None:
    world.github.code_scanning = False  # an upload GitHub refuses is logged, and the review goes on
    data = "".join(f"row {n}: {'x' * 70}\n" for n in range(11_000))  # about 870 kB of text
    head = commit(world.checkout, {"data.txt": data}, "a large fixture")
    world.github.pulls[(REPO, 11)] = head
    status, _ = await world.deliver("pull_request", pull_request("opened", 11, head, world.base))
    assert status == 202
    await world.github.until(lambda: world.github.latest(head).get("maestro/test") == "failure")
    latest = {s["context"]: s for s in world.github.statuses(head)}
    assert latest["maestro/review"]["state"] == "failure" and latest["maestro/check-pr"]["state"] == "success"
    assert "MAESTRO_MAX_REQUEST_BYTES" in latest["maestro/test"]["description"]
    assert len(latest["maestro/test"]["description"]) <= 140
    await handled(world)
    assert await world.reviews() == []
    assert [c.path for c in world.github.calls if c.path.endswith("/sarifs")] == [
        f"/repos/{REPO}/code-scanning/sarifs"
    ]
