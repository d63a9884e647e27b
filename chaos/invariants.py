"""The invariants (docs/ARCHITECTURE.md) as pure checks over collected facts, giving numbers and violations.

- every acknowledged task is in exactly one terminal state (its record, and one terminal event);
- none ran twice: its command's side effect appears once. A run before the last one is excused only
  when it finished before the harness SIGKILLed its agent and before any outcome of the task was stored:
  nobody could know it had finished (at-least-once). Every other re-run is a duplicate, including one
  after a killed agent's command ran on by itself (orphaned) and recorded its effect after the kill, and
  one whose shell started only after its agent had died (its parent pid reads 1);
- each tenant's records cost what its ledger charged, and that is not 0 (else the check proves nothing);
- spent plus held never exceeded a tenant's limit, in any sample or at the end.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from chaos.effects import Execution
from chaos.facts import Facts, Kill, LedgerSample, StoredEvent
from proto.v1 import TERMINAL_STATES, Cancelled, Failed, Rejected, Succeeded, TimedOut

_SHOWN_IDS = 4
_TERMINAL_KINDS: dict[type, str] = {
    Rejected: "rejected",
    Succeeded: "succeeded",
    Failed: "failed",
    Cancelled: "cancelled",
    TimedOut: "timed_out",
}
STATE_ORDER = (
    "succeeded",
    "rejected",
    "failed",
    "timed_out",
    "cancelled",
    "pending",
    "awaiting_approval",
    "queued",
    "running",
    "missing",
)


def _some(ids: Iterable[str]) -> str:
    listed = sorted(ids)
    shown = ", ".join(listed[:_SHOWN_IDS])
    return shown + (f" (+{len(listed) - _SHOWN_IDS} more)" if len(listed) > _SHOWN_IDS else "")


@dataclass(frozen=True)
class Report:
    """One scenario's row: what was submitted, how it ended, and every violation found."""

    scenario: str
    submitted: int = 0
    states: dict[str, int] = field(default_factory=dict)
    executions: int = 0
    duplicates: int = 0
    """Runs beyond the first of a task that no harness kill explains."""
    excused: int = 0
    """Runs beyond the first of a task whose earlier runs were by agents the harness killed mid-task."""
    charged: int = 0
    recorded: int = 0
    overspend: int = 0
    seconds: float = 0.0
    violations: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether no invariant was violated."""
        return not self.violations


def terminal_states(facts: Facts) -> tuple[dict[str, int], list[str]]:
    """Tasks by the state of their record (`missing`: no record), and what is not exactly one end."""
    counts: Counter[str] = Counter()
    stuck: dict[str, list[str]] = defaultdict(list)
    two_ends: list[str] = []
    disagree: list[str] = []
    for task_id in facts.tasks():
        record = facts.records.get(task_id)
        state = record.state if record else "missing"
        counts[state] += 1
        if state not in TERMINAL_STATES:
            stuck[state].append(task_id)
        ends = [
            _TERMINAL_KINDS[type(e.event)]
            for e in facts.events.get(task_id, ())
            if type(e.event) in _TERMINAL_KINDS
        ]
        if len(ends) > 1:
            two_ends.append(task_id)
        if record and state in TERMINAL_STATES and ends and ends[0] != state:
            disagree.append(task_id)
    violations = [
        f"{len(ids)} tasks have no record: {_some(ids)}"
        if state == "missing"
        else f"{len(ids)} tasks never left {state}: {_some(ids)}"
        for state, ids in sorted(stuck.items())
    ]
    if two_ends:
        violations.append(f"{len(two_ends)} tasks have more than one terminal event: {_some(two_ends)}")
    if disagree:
        violations.append(f"{len(disagree)} records disagree with their terminal event: {_some(disagree)}")
    ordered = {s: counts[s] for s in STATE_ORDER if counts[s]}
    ordered.update({s: n for s, n in counts.items() if s not in ordered})
    return ordered, violations


def _outcome_at(events: Sequence[StoredEvent]) -> float | None:
    stored = [e.stored_at for e in events if type(e.event) in _TERMINAL_KINDS]
    return min(stored) if stored else None


_NO_PARENT = 1
"""The pid a command records when its shell started after its agent had died (it was reparented to init)."""


def _orphaned(run: Execution, kills: dict[int, Kill]) -> bool:
    # Its command recorded the effect after its agent was killed: it ran on, orphaned.
    kill = kills.get(run.pid)
    return kill is not None and run.at_ns / 1e9 > kill.at


def _excused(runs: Sequence[Execution], kills: dict[int, Kill], outcome_at: float | None) -> bool:
    # Every run but the last finished before its agent was killed, and before any outcome was stored:
    # the crash window of at-least-once delivery. A run that went on after its agent died is not excused.
    for run in runs[:-1]:
        kill = kills.get(run.pid)
        if kill is None or _orphaned(run, kills) or (outcome_at is not None and outcome_at <= kill.at):
            return False
    return True


@dataclass(frozen=True)
class Runs:
    """How often the tasks' commands ran."""

    executions: int
    duplicates: int
    excused: int
    violations: list[str]
    notes: list[str]


def executions(facts: Facts) -> Runs:
    """Count each task's runs; a run beyond the first is a duplicate unless a harness kill explains it."""
    tasks = facts.tasks()
    by_id: dict[str, list[Execution]] = defaultdict(list)
    for run in sorted(facts.executions, key=lambda r: r.at_ns):
        by_id[run.task_id].append(run)
    kills = {k.pid: k for k in facts.kills}
    duplicated: list[str] = []
    orphans: list[str] = []
    unparented: list[str] = []
    duplicates = excused = 0
    for task_id, runs in by_id.items():
        if len(runs) < 2:
            continue
        if _excused(runs, kills, _outcome_at(facts.events.get(task_id, ()))):
            excused += len(runs) - 1
            continue
        duplicates += len(runs) - 1
        duplicated.append(task_id)
        if any(_orphaned(run, kills) for run in runs[:-1]):
            orphans.append(task_id)
        if any(run.pid == _NO_PARENT for run in runs[:-1]):
            unparented.append(task_id)
    violations: list[str] = []
    notes: list[str] = []
    if duplicated:
        violations.append(f"{len(duplicated)} tasks ran more than once: {_some(duplicated)}")
    if orphans:
        violations.append(
            f"{len(orphans)} of them because the command of a killed agent ran on and the task ran again "
            "(nothing ends a task's commands when its agent dies)"
        )
    if unparented:
        violations.append(
            f"{len(unparented)} of them because a command's shell started after its agent had died (its "
            "parent pid was 1: the agent was killed between starting the command and the command's "
            "PR_SET_PDEATHSIG), ran with nobody to stop it, and the task ran again"
        )
    if excused:
        notes.append(
            f"{excused} re-runs of tasks whose agent was SIGKILLed mid-task (at-least-once, excused)"
        )
    unasked = sorted(set(by_id) - set(tasks))
    if unasked:
        notes.append(f"{len(unasked)} commands ran for submissions never acknowledged: {_some(unasked)}")
    expected = {i for i, s in tasks.items() if s.effect}
    refused = {i for i in expected if not tasks[i].must_run or _state(facts, i) == "rejected"}
    ran_refused = sorted(i for i in refused if by_id.get(i))
    if ran_refused:
        violations.append(f"{len(ran_refused)} refused tasks ran anyway: {_some(ran_refused)}")
    silent = sorted(i for i in expected if _state(facts, i) == "succeeded" and not by_id.get(i))
    if silent:
        violations.append(f"{len(silent)} tasks succeeded without running their command: {_some(silent)}")
    should_run = expected - refused
    if should_run and not any(by_id.get(i) for i in should_run):
        violations.append("no side effect was counted at all: the duplicate check could not fail")
    if facts.unreadable_effects:
        violations.append(f"{facts.unreadable_effects} effect lines could not be read")
    late = sorted({r.task_id for r in facts.executions if r.pid in kills and r.at_ns / 1e9 > kills[r.pid].at})
    if late:
        notes.append(f"{len(late)} commands finished after their agent was killed (orphans): {_some(late)}")
    return Runs(len(facts.executions), duplicates, excused, violations, notes)


def _state(facts: Facts, task_id: str) -> str:
    record = facts.records.get(task_id)
    return record.state if record else "missing"


def costs(facts: Facts) -> tuple[int, int, list[str]]:
    """What the ledgers charged and the records say, in all; a violation for each tenant that differs."""
    recorded: Counter[str] = Counter()
    for task_id in facts.tasks():
        record = facts.records.get(task_id)
        if record is not None:
            recorded[record.tenant] += record.cost_micro_usd
    violations: list[str] = []
    charged_total = 0
    for tenant in sorted(set(recorded) | set(facts.ledgers)):
        ledger = facts.ledgers.get(tenant)
        if ledger is None:
            violations.append(f"{tenant}: its ledger could not be read")
            continue
        charged_total += ledger.spent_micro_usd
        if ledger.spent_micro_usd != recorded[tenant]:
            violations.append(
                f"{tenant}: ledger charged {ledger.spent_micro_usd} µUSD, records say {recorded[tenant]}"
            )
    succeeded = any(r.state == "succeeded" for r in facts.records.values())
    if succeeded and charged_total == 0 and sum(recorded.values()) == 0:
        violations.append("every task cost 0: the cost check could not fail (is the model priced?)")
    return charged_total, sum(recorded.values()), violations


def overspend(facts: Facts) -> tuple[int, list[str], list[str]]:
    """The most any tenant's spent plus held went over its limit, its violations, and notes on holds left."""
    samples = list(facts.samples)
    worst: dict[str, int] = {}
    for sample in samples + [LedgerSample.of(view, 0.0) for view in facts.ledgers.values()]:
        over = sample.spent + sample.held - sample.limit
        if over > 0:
            worst[sample.tenant] = max(worst.get(sample.tenant, 0), over)
    violations = [
        f"{tenant}: spent + held went {over} µUSD over its limit" for tenant, over in sorted(worst.items())
    ]
    all_ended = all(_state(facts, i) in TERMINAL_STATES for i in facts.tasks())
    notes = [
        f"{view.tenant}: {view.held_micro_usd} µUSD still held in {view.holds} holds after every task ended"
        for view in facts.ledgers.values()
        if all_ended and view.held_micro_usd
    ]
    return max(worst.values(), default=0), violations, notes


def check(
    scenario: str,
    facts: Facts,
    seconds: float,
    *,
    violations: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> Report:
    """Judge a scenario's facts by every invariant; `violations` and `notes` add the scenario's own."""
    states, ends = terminal_states(facts)
    runs = executions(facts)
    charged, recorded, money = costs(facts)
    over, limits, holds = overspend(facts)
    if facts.backlog:
        held = ", ".join(f"{durable}: {what}" for durable, what in sorted(facts.backlog.items()))
        violations = [
            *violations,
            f"consumers still held work at the end (redelivered without end?): {held}",
        ]
    if facts.leaks:
        violations = [*violations, f"the planted credential is stored in clear: {', '.join(facts.leaks)}"]
    wrongly = [s.task_id for s, _ in facts.refusals if s.must_run]
    if wrongly:
        violations = [
            *violations,
            f"{len(wrongly)} good submissions were refused by the SDK: {_some(wrongly)}",
        ]
    if facts.unacknowledged:
        notes = [
            *notes,
            f"{facts.unacknowledged} submissions were never acknowledged (retried, then dropped)",
        ]
    return Report(
        scenario=scenario,
        submitted=len(facts.tasks()),
        states=states,
        executions=runs.executions,
        duplicates=runs.duplicates,
        excused=runs.excused,
        charged=charged,
        recorded=recorded,
        overspend=over,
        seconds=seconds,
        violations=(*ends, *runs.violations, *money, *limits, *violations),
        notes=(*runs.notes, *holds, *notes),
    )
