"""Filling a step's prompt and context from the steps it needs, no server."""

from __future__ import annotations

from datetime import UTC, datetime

from proto.v1 import ArtifactRef, TaskRecord, TaskState
from services.orchestrator.workflows.template import context_of, render

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def task(
    state: TaskState, output: str = "", error: str = "", artifacts: tuple[ArtifactRef, ...] = ()
) -> TaskRecord:
    return TaskRecord(
        id="wf-x",
        tenant="acme",
        state=state,
        created_at=NOW,
        updated_at=NOW,
        output=output,
        error=error,
        artifacts=list(artifacts),
    )


def test_fields_are_filled_from_the_steps_records() -> None:
    steps = {"plan": task("succeeded", "1. a\n2. b"), "test": task("failed", error="2 failed")}
    prompt = (
        "Do {{ steps.plan.output }} for {{workflow.id}}; tests {{ steps.test.state }}: {{steps.test.error}}"
    )
    assert render(prompt, "wf-1", steps) == "Do 1. a\n2. b for wf-1; tests failed: 2 failed"


def test_a_filled_value_is_not_read_as_a_template_again() -> None:
    steps = {"plan": task("succeeded", "{{ workflow.id }} {{ steps.plan.output }}")}
    assert render("{{ steps.plan.output }}", "wf-1", steps) == "{{ workflow.id }} {{ steps.plan.output }}"


def test_unknown_fields_and_steps_without_a_record() -> None:
    assert render("{{ steps.none.output }}|{{ other }}|{{ steps.plan.cost }}", "w", {}) == (
        "|{{ other }}|{{ steps.plan.cost }}"
    )


def test_each_need_hands_its_output_and_artifacts_as_a_context_file() -> None:
    done = task("succeeded", "the plan", artifacts=(ArtifactRef(name="acme/wf-plan/plan.md", size=12),))
    (file,) = context_of(["plan", "missing"], {"plan": done})
    assert file.path == ".maestro/steps/plan.md"
    assert "the plan" in file.content and "acme/wf-plan/plan.md (12 bytes)" in file.content
