"""The invariants' pure checks, on facts made by hand: each can pass, and each can fail."""

from __future__ import annotations

from datetime import UTC, datetime

from chaos.effects import Execution
from chaos.facts import Facts, Kill, LedgerSample, StoredEvent, Submission
from chaos.invariants import check, costs, executions, overspend, terminal_states
from proto.v1 import Decision, LedgerView, Rejected, Succeeded, TaskRecord
from proto.v1.tasks import TaskState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
T0 = 1_000.0  # wall clock seconds of the made-up run


def record(task_id: str, state: TaskState = "succeeded", cost: int = 100, tenant: str = "acme") -> TaskRecord:
    return TaskRecord(
        id=task_id, tenant=tenant, state=state, created_at=NOW, updated_at=NOW, cost_micro_usd=cost
    )


def succeeded(task_id: str, at: float, seq: int = 1) -> StoredEvent:
    return StoredEvent(
        seq, at, Succeeded(task_id=task_id, tenant="acme", at=NOW, worker="w", cost_micro_usd=100)
    )


def ledger(spent: int, held: int = 0, limit: int = 1_000_000, tenant: str = "acme") -> LedgerView:
    return LedgerView(
        tenant=tenant,
        limit_micro_usd=limit,
        spent_micro_usd=spent,
        held_micro_usd=held,
        remaining_micro_usd=limit - spent - held,
    )


def run(task_id: str, pid: int, at: float) -> Execution:
    return Execution(task_id, pid, int(at * 1e9))


def healthy(n: int = 3) -> Facts:
    ids = [f"t{i}" for i in range(n)]
    return Facts(
        submissions=[Submission(i, "acme", "tester", effect=True) for i in ids],
        records={i: record(i) for i in ids},
        events={i: [succeeded(i, T0 + 1)] for i in ids},
        executions=[run(i, 10, T0) for i in ids],
        ledgers={"acme": ledger(spent=100 * n)},
    )


def test_a_healthy_run_keeps_every_invariant() -> None:
    report = check("baseline", healthy(), 1.0)
    assert report.ok, report.violations
    assert report.states == {"succeeded": 3}
    assert (report.executions, report.duplicates, report.charged, report.recorded) == (3, 0, 300, 300)


def test_a_task_without_a_record_or_stuck_is_named() -> None:
    facts = healthy()
    del facts.records["t0"]
    facts.records["t1"] = record("t1", state="running")
    states, violations = terminal_states(facts)
    assert states == {"succeeded": 1, "running": 1, "missing": 1}
    assert "1 tasks have no record: t0" in violations
    assert "1 tasks never left running: t1" in violations


def test_two_terminal_events_or_a_record_that_disagrees_are_violations() -> None:
    facts = healthy()
    rejected = Rejected(task_id="t0", tenant="acme", at=NOW, decision=Decision(verdict="deny"))
    facts.events["t0"].append(StoredEvent(2, T0 + 2, rejected))
    facts.events["t1"] = [StoredEvent(1, T0, rejected)]
    _, violations = terminal_states(facts)
    assert any("more than one terminal event: t0" in v for v in violations)
    assert any("disagree with their terminal event: t1" in v for v in violations)


def test_a_second_run_by_a_live_agent_is_a_duplicate() -> None:
    facts = healthy()
    facts.executions.append(run("t0", 10, T0 + 5))
    runs = executions(facts)
    assert (runs.executions, runs.duplicates, runs.excused) == (4, 1, 0)
    assert runs.violations == ["1 tasks ran more than once: t0"]


def test_a_rerun_after_the_agent_was_killed_mid_task_is_excused() -> None:
    facts = healthy()
    facts.executions.append(run("t0", 20, T0 + 5))
    facts.events["t0"] = [succeeded("t0", T0 + 6)]
    facts.kills = [Kill("agents", 10, T0 + 0.5)]
    runs = executions(facts)
    assert (runs.duplicates, runs.excused, runs.violations) == (0, 1, [])


def test_a_rerun_after_the_outcome_was_stored_is_not_excused() -> None:
    facts = healthy()
    facts.executions.append(run("t0", 20, T0 + 5))
    facts.kills = [Kill("agents", 10, T0 + 2)]  # after t0's outcome (T0 + 1) was stored
    assert executions(facts).duplicates == 1


def test_a_command_that_ran_on_after_its_agent_died_is_not_excused() -> None:
    facts = healthy()
    facts.kills = [Kill("agents", 10, T0 - 0.5)]  # the first run recorded its effect after the kill
    facts.executions.append(run("t0", 20, T0 + 5))
    facts.events["t0"] = [succeeded("t0", T0 + 6)]
    runs = executions(facts)
    assert runs.duplicates == 1
    assert any("command of a killed agent ran on" in v for v in runs.violations)


def test_a_refused_task_that_ran_or_a_success_without_a_run_are_violations() -> None:
    facts = healthy()
    facts.submissions[0] = Submission("t0", "acme", "tester", effect=True, must_run=False)
    facts.executions = [e for e in facts.executions if e.task_id != "t1"]
    violations = executions(facts).violations
    assert "1 refused tasks ran anyway: t0" in violations
    assert "1 tasks succeeded without running their command: t1" in violations


def test_no_side_effect_at_all_means_the_duplicate_check_could_not_fail() -> None:
    facts = healthy()
    facts.executions = []
    assert any("could not fail" in v for v in executions(facts).violations)


def test_records_must_cost_what_the_ledger_charged_and_not_nothing() -> None:
    facts = healthy()
    facts.ledgers["acme"] = ledger(spent=301)
    assert costs(facts)[2] == ["acme: ledger charged 301 µUSD, records say 300"]
    free = healthy()
    free.records = {i: record(i, cost=0) for i in free.records}
    free.ledgers["acme"] = ledger(spent=0)
    assert any("every task cost 0" in v for v in costs(free)[2])


def test_spent_plus_held_over_the_limit_at_any_moment_is_overspend() -> None:
    facts = healthy()
    facts.samples = [LedgerSample("acme", T0, limit=1000, spent=700, held=400)]
    over, violations, _ = overspend(facts)
    assert over == 100
    assert violations == ["acme: spent + held went 100 µUSD over its limit"]


def test_holds_left_after_every_task_ended_are_noted() -> None:
    facts = healthy()
    facts.ledgers["acme"] = ledger(spent=300, held=50)
    assert overspend(facts)[2] == ["acme: 50 µUSD still held in 0 holds after every task ended"]


def test_a_consumer_still_holding_work_at_the_end_is_a_violation() -> None:
    facts = healthy()
    facts.backlog = {"guard": "0 pending, 3 unacknowledged"}
    report = check("poison", facts, 1.0)
    assert report.violations == (
        "consumers still held work at the end (redelivered without end?): guard: 0 pending, 3 unacknowledged",
    )


def test_a_good_submission_the_sdk_refused_is_a_violation() -> None:
    facts = healthy()
    facts.refusals = [(Submission("t9", "acme", "tester"), "409: conflict")]
    assert check("identity", facts, 1.0).violations == ("1 good submissions were refused by the SDK: t9",)
