"""A workflow's progress from its record, no server: what runs, what is skipped, when it ends and how."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from msgspec import structs

from proto.v1 import TaskRecord, TaskState
from proto.v1.workflows import Need, Plan, Step, Subtask, Workflow, WorkflowRecord
from services.orchestrator.workflows.dag import created, expanded, progress, step_ended

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def step(name: str, *needs: str | Need, role: str = "implementer") -> Step:
    return Step(name=name, role=role, prompt=f"do {name}", needs=list(needs))  # type: ignore[arg-type]


def workflow(*steps: Step) -> Workflow:
    return Workflow(id="wf", tenant="acme", steps=list(steps))


DIAMOND = workflow(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c"))


def ended(record: WorkflowRecord, name: str, state: TaskState, error: str = "") -> WorkflowRecord:
    task = TaskRecord(
        id=f"wf-{name}",
        tenant="acme",
        state=state,
        created_at=NOW,
        updated_at=NOW,
        error=error,
        cost_micro_usd=10,
        attempts=1,
    )
    return step_ended(record, task)


def states(record: WorkflowRecord) -> dict[str, str]:
    return {s.name: s.state for s in record.steps}


def run(record: WorkflowRecord) -> tuple[WorkflowRecord, list[str], list[str], bool]:
    p = progress(record, NOW)
    return p.record, p.submit, p.cancel, p.ended


def test_a_diamond_runs_its_root_then_both_branches_then_the_join() -> None:
    record, submit, _, _ = run(created(DIAMOND, "d1", NOW))
    assert submit == ["a"] and states(record)["a"] == "pending"
    assert run(record)[1] == []  # deciding again on the stored record submits nothing twice
    record, submit, _, _ = run(ended(record, "a", "succeeded"))
    assert sorted(submit) == ["b", "c"]
    record, submit, _, _ = run(ended(record, "b", "succeeded"))
    assert submit == []  # d still waits for c
    record, submit, _, done = run(ended(record, "c", "succeeded"))
    assert submit == ["d"] and not done
    record, submit, _, done = run(ended(record, "d", "succeeded"))
    assert done and record.state == "succeeded" and record.cost_micro_usd == 40


def test_a_failure_on_a_fail_edge_fails_the_workflow_cancelling_what_runs_and_skipping_what_waits() -> None:
    record, *_ = run(created(DIAMOND, "d", NOW))
    record, *_ = run(ended(record, "a", "succeeded"))
    record, submit, cancel, done = run(ended(record, "b", "failed", "exit 1"))
    assert submit == [] and cancel == ["c"] and not done  # it ends when every step has
    assert record.ending == "failed" and record.reason == "step b failed"
    assert states(record)["d"] == "skipped"
    record, _, cancel, done = run(ended(record, "c", "cancelled"))
    assert done and record.state == "failed" and record.reason == "step b failed" and cancel == []


def test_a_skip_edge_skips_the_step_and_its_dependents_and_the_workflow_succeeds() -> None:
    wf = workflow(step("a"), step("b", Need(step="a", on_failure="skip")), step("c", "b"))
    record, *_ = run(created(wf, "d", NOW))
    record, submit, _, done = run(ended(record, "a", "failed"))
    assert submit == [] and done
    assert states(record) == {"a": "failed", "b": "skipped", "c": "skipped"}
    assert record.state == "succeeded"  # a's failure was taken in by b's edge


def test_a_continue_edge_runs_the_step_with_the_failure_visible() -> None:
    wf = workflow(step("a"), step("b", Need(step="a", on_failure="continue")))
    record, *_ = run(created(wf, "d", NOW))
    record, submit, _, _ = run(ended(record, "a", "timed_out"))
    assert submit == ["b"]
    record, _, _, done = run(ended(record, "b", "succeeded"))
    assert done and record.state == "succeeded"


def test_a_failed_last_step_fails_the_workflow() -> None:
    wf = workflow(step("a"), step("b", "a"))
    record, *_ = run(created(wf, "d", NOW))
    record, *_ = run(ended(record, "a", "succeeded"))
    record, _, _, done = run(ended(record, "b", "rejected"))
    assert done and (record.state, record.reason) == ("failed", "step b rejected")


def test_a_paused_workflow_starts_nothing_until_it_runs_again() -> None:
    record, *_ = run(created(DIAMOND, "d", NOW))
    record = structs.replace(ended(record, "a", "succeeded"), state="paused")
    record, submit, _, done = run(record)
    assert submit == [] and not done and states(record)["b"] == "waiting"
    assert sorted(run(structs.replace(record, state="running"))[1]) == ["b", "c"]


def test_cancelling_cancels_what_runs_skips_what_waits_and_ends_cancelled_once_all_ended() -> None:
    record, *_ = run(created(DIAMOND, "d", NOW))
    record, *_ = run(ended(record, "a", "succeeded"))
    record, submit, cancel, done = run(structs.replace(record, ending="cancelled", reason="by alice"))
    assert submit == [] and sorted(cancel) == ["b", "c"] and not done
    assert states(record)["d"] == "skipped"
    record, *_ = run(ended(record, "b", "cancelled"))
    record, _, _, done = run(ended(record, "c", "succeeded"))
    assert done and (record.state, record.reason) == ("cancelled", "by alice")


def test_an_ended_workflow_decides_nothing() -> None:
    record, *_ = run(created(workflow(step("a")), "d", NOW))
    record, _, _, done = run(ended(record, "a", "succeeded"))
    assert done and run(record) == (record, [], [], False)


def test_a_step_ends_once_a_later_report_changes_nothing() -> None:
    record, *_ = run(created(workflow(step("a")), "d", NOW))
    once = ended(record, "a", "failed")
    assert ended(once, "a", "succeeded") is once


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([step("a"), step("a")], "steps[1].name: 'a' is also steps[0]'s name"),
        ([step("a", "x")], "steps[0].needs[0]: no step is named 'x'"),
        ([step("a", "a")], "steps[0].needs[0]: 'a' cannot need itself"),
        ([step("a", "c"), step("b", "a"), step("c", "b")], "a cycle a -> c -> b -> a"),
        (
            [step("a"), Step(name="b", role="tester", prompt="{{ steps.c.output }}"), step("c", "a")],
            "steps[1].prompt: names step 'c'",
        ),
    ],
)
def test_a_workflow_that_is_no_dag_is_refused_naming_the_field(steps: list[Step], problem: str) -> None:
    raw = msgspec.json.encode({"tenant": "acme", "steps": steps})
    with pytest.raises(msgspec.ValidationError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        msgspec.json.decode(raw, type=Workflow)


def plan(*subtasks: tuple[str, list[str]]) -> Plan:
    return Plan(
        subtasks=[Subtask(name=n, role="implementer", prompt=f"do {n}", needs=needs) for n, needs in subtasks]
    )


EXPANDING = workflow(
    Step(name="plan", role="planner", prompt="Plan it", expand=True),
    step("review", Need(step="plan", on_failure="continue")),
)


def test_a_plan_joins_the_workflow_after_its_planner_and_before_what_needed_it() -> None:
    record, *_ = run(created(EXPANDING, "d", NOW))
    record = ended(record, "plan", "succeeded")
    grown = expanded(record, "plan", plan(("a", []), ("b", ["a"]), ("c", [])), limit=10)
    assert not isinstance(grown, str)
    by_name = {s.name: s for s in grown.workflow.steps}
    assert [n.step for n in by_name["plan_1"].edges()] == ["plan"]
    assert [n.step for n in by_name["plan_2"].edges()] == ["plan", "plan_1"]
    # review waits for the plan's last subtasks too, on the terms it needed the planner on
    assert [(n.step, n.on_failure) for n in by_name["review"].edges()] == [
        ("plan", "continue"),
        ("plan_2", "continue"),
        ("plan_3", "continue"),
    ]
    assert [s.task_id for s in grown.steps][-3:] == ["wf-plan_1", "wf-plan_2", "wf-plan_3"]
    record, submit, _, _ = run(grown)
    assert sorted(submit) == ["plan_1", "plan_3"]


@pytest.mark.parametrize(
    ("subtasks", "why"),
    [
        ([("a", ["zz"])], "needs 'zz'"),
        ([("a", []), ("a", [])], "two subtasks alike"),
        ([("a", ["b"]), ("b", ["a"])], "a cycle"),
        ([(f"s{n}", []) for n in range(11)], "at most 10"),
    ],
)
def test_a_plan_that_cannot_join_the_workflow_says_why(
    subtasks: list[tuple[str, list[str]]], why: str
) -> None:
    record, *_ = run(created(EXPANDING, "d", NOW))
    grown = expanded(ended(record, "plan", "succeeded"), "plan", plan(*subtasks), limit=10)
    assert isinstance(grown, str) and why in grown


def test_what_a_step_cost_after_it_ended_reaches_the_workflow_but_not_its_state() -> None:
    # A cancelled step's worker pays for the stopped attempt after the step ended: the workflow's cost
    # must still equal its steps' tasks'.
    record, *_ = run(created(workflow(step("a"), step("b")), "d", NOW))
    record = ended(record, "a", "cancelled")
    late = TaskRecord(
        id="wf-a", tenant="acme", state="cancelled", created_at=NOW, updated_at=NOW, cost_micro_usd=75
    )
    after = step_ended(record, late)
    assert after.step("a").state == "cancelled" and after.step("a").cost_micro_usd == 75
    assert after.cost_micro_usd == 75 + 0
