"""The commit statuses of a review (pure): check-pr's verdict, pending, and each step's outcome."""

from __future__ import annotations

from datetime import UTC, datetime

from maestro.github.rest import CommitStatus
from maestro.policy.check_pr import Finding, Review
from proto.v1 import Decision, TaskRecord, Violation
from proto.v1.workflows import Step, StepRecord, Workflow, WorkflowRecord
from services.orchestrator.reviews import statuses

NOW = datetime(2026, 12, 2, tzinfo=UTC)
LINK = "https://maestro.example/v1/workflows/pr-1"


def finding(enforced: bool) -> Finding:
    violation = Violation(
        policy="credentials", rule_id="credentials.aws-key", message="an AWS key", enforced=enforced
    )
    return Finding("app/settings.py", 12, 5, violation)


def test_check_pr_fails_on_deny_and_names_the_first_finding() -> None:
    denied = statuses.check_pr(Review(Decision(verdict="deny"), [finding(True), finding(False)]), LINK)
    assert denied == CommitStatus(
        "maestro/check-pr",
        "failure",
        "denied: 1 of 2 findings enforced; first: app/settings.py:12 credentials.aws-key",
        LINK,
    )
    audited = statuses.check_pr(Review(Decision(verdict="allow"), [finding(False)]))
    assert (audited.state, audited.description) == ("success", "allow: 1 findings, none blocking")
    clean = statuses.check_pr(Review(Decision(verdict="allow"), []))
    assert (clean.state, clean.description) == ("success", "no findings in the added lines")


def record(state: str, steps: list[StepRecord], reason: str = "") -> WorkflowRecord:
    workflow = Workflow(
        id="pr-1",
        tenant="acme",
        steps=[
            Step(name="review", role="reviewer", prompt="r"),
            Step(name="test", role="tester", prompt="t"),
        ],
    )
    return WorkflowRecord(
        id="pr-1",
        tenant="acme",
        state=state,  # type: ignore[arg-type]
        created_at=NOW,
        updated_at=NOW,
        workflow=workflow,
        digest="d",
        steps=steps,
        reason=reason,
    )


def task(step: str, state: str, output: str = "", error: str = "") -> TaskRecord:
    return TaskRecord(
        id=f"pr-1-{step}",
        tenant="acme",
        state=state,  # type: ignore[arg-type]
        created_at=NOW,
        updated_at=NOW,
        output=output,
        error=error,
    )


def test_each_step_says_how_it_ended_in_one_line() -> None:
    ended = record(
        "failed",
        [
            StepRecord(name="review", task_id="pr-1-review", state="succeeded"),
            StepRecord(name="test", task_id="pr-1-test", state="failed"),
        ],
    )
    tasks = {
        "review": task("review", "succeeded", output="\nReviewed 3 files: fine\nmore"),
        "test": task("test", "failed", error="1 of 2 commands failed\n$ pytest -q -> exit 1"),
    }
    assert statuses.final(ended, tasks, LINK) == [
        CommitStatus("maestro/review", "success", "Reviewed 3 files: fine", LINK),
        CommitStatus("maestro/test", "failure", "failed: 1 of 2 commands failed", LINK),
    ]


def test_a_cancelled_review_has_no_verdict() -> None:
    cancelled = record(
        "cancelled",
        [
            StepRecord(name="review", task_id="pr-1-review", state="succeeded"),
            StepRecord(name="test", task_id="pr-1-test", state="cancelled"),
        ],
        reason="superseded by 0123456789ab",
    )
    found = statuses.final(cancelled, {"review": task("review", "succeeded", output="ok")})
    assert [(s.context, s.state, s.description) for s in found] == [
        ("maestro/review", "success", "ok"),
        ("maestro/test", "error", "cancelled: superseded by 0123456789ab"),
    ]


def test_pending_and_refused_cover_the_steps_the_review_has() -> None:
    assert [s.context for s in statuses.pending("pr-1", ["review", "test"])] == [
        "maestro/review",
        "maestro/test",
    ]
    refused = statuses.refused(["review", "test"], "not run: too large")
    assert {(s.state, s.description) for s in refused} == {("failure", "not run: too large")}


def test_a_long_description_is_cut_to_what_github_takes() -> None:
    body = CommitStatus("maestro/test", "failure", "x " * 200).body()
    assert len(body["description"]) == 140 and body["description"].endswith("…") and "target_url" not in body
