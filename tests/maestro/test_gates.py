"""The deploy gate's pure judgement: which tester tasks prove a commit, and the reason when none does."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from maestro import gates
from maestro.access.nats_permissions import ORCHESTRATOR, permissions, tenant_principal
from maestro.gate_cli import one_line, seconds
from maestro.gates import Ask, BadAsk, judge
from proto.v1 import Decision, TaskRecord
from proto.v1.tasks import TaskState

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "f" * 40
ASK = Ask.checked("acme", "acme/widgets", SHA, 3600.0)
ALLOW = Decision(verdict="allow", policy_version="prod-7", policy_hash="ab" * 32)


def task(
    n: int,
    state: TaskState,
    *,
    created_min_ago: float,
    finished_min_ago: float | None = None,
    tenant: str = "acme",
    role: str = "tester",
    repo: str = "acme/widgets",
    commit: str = SHA,
    **more: object,
) -> TaskRecord:
    created = NOW - timedelta(minutes=created_min_ago)
    finished = NOW - timedelta(minutes=finished_min_ago) if finished_min_ago is not None else None
    return TaskRecord(
        id=f"t-{n}",
        tenant=tenant,
        state=state,
        role=role,  # type: ignore[arg-type]
        labels={"repo": repo, "commit": commit, "workflow": "wf-1"},
        created_at=created,
        updated_at=finished or created,
        finished_at=finished,
        **more,  # type: ignore[arg-type]
    )


def test_no_tester_task_is_no_test_and_names_the_commit() -> None:
    answer = judge([], {}, ASK, NOW)
    assert (answer.allowed, answer.outcome, answer.task_id) == (False, "no_test", None)
    assert answer.reason == f"no tester task for acme/widgets at {SHA} in tenant acme"


def test_a_success_within_the_max_age_allows_and_names_the_task_and_its_policy() -> None:
    answer = judge([task(1, "succeeded", created_min_ago=20, finished_min_ago=10)], {"t-1": ALLOW}, ASK, NOW)
    assert (answer.allowed, answer.outcome, answer.task_id, answer.task_state) == (
        True,
        "allowed",
        "t-1",
        "succeeded",
    )
    assert (answer.policy_version, answer.policy_hash) == ("prod-7", "ab" * 32)
    assert (
        answer.reason
        == "tester task t-1 succeeded at 2026-06-01T11:50:00Z under policy prod-7 (abababababab)"
    )
    assert answer.finished_at == NOW - timedelta(minutes=10)


def test_tasks_of_other_roles_commits_repos_and_tenants_are_never_seen() -> None:
    unseen = [
        task(1, "succeeded", created_min_ago=5, finished_min_ago=1, role="reviewer"),
        task(2, "succeeded", created_min_ago=5, finished_min_ago=1, commit=OTHER_SHA),
        task(3, "succeeded", created_min_ago=5, finished_min_ago=1, repo="acme/gadgets"),
        task(4, "succeeded", created_min_ago=5, finished_min_ago=1, tenant="globex"),
        task(5, "succeeded", created_min_ago=5, finished_min_ago=1, repo="acme/widgets2"),
    ]
    decisions = {r.id: ALLOW for r in unseen}
    assert judge(unseen, decisions, ASK, NOW).outcome == "no_test"
    mine = task(6, "failed", created_min_ago=30, finished_min_ago=25, error="2 tests failed")
    answer = judge([*unseen, mine], decisions, ASK, NOW)
    assert (answer.outcome, answer.task_id) == ("failed", "t-6")


@pytest.mark.parametrize(
    ("state", "fields", "outcome", "reason"),
    [
        (
            "pending",
            {},
            "running",
            "tester task t-1 is still waiting for the guard (submitted at 2026-06-01T11:55:00Z)",
        ),
        (
            "queued",
            {},
            "running",
            "tester task t-1 is still queued for a tester (since 2026-06-01T11:55:00Z)",
        ),
        (
            "running",
            {"started_at": NOW - timedelta(minutes=4)},
            "running",
            "tester task t-1 is still running (since 2026-06-01T11:56:00Z)",
        ),
        (
            "awaiting_approval",
            {"reason": "residency.unknown-location: where the worker runs is unknown"},
            "not_allowed",
            "tester task t-1 was never allowed: it awaits a human's approval "
            "(residency.unknown-location: where the worker runs is unknown)",
        ),
        (
            "rejected",
            {"reason": "commands.denied: curl is not allowed\nsecond line"},
            "not_allowed",
            "tester task t-1 was never allowed: the guard rejected it (commands.denied: curl is not allowed)",
        ),
        (
            "failed",
            {"error": "exit status 1: 3 failed, 40 passed", "finished_min_ago": 0},
            "failed",
            "tester task t-1 failed at 2026-06-01T12:00:00Z: exit status 1: 3 failed, 40 passed",
        ),
        (
            "timed_out",
            {"reason": "ran longer than 600s", "finished_min_ago": 0},
            "failed",
            "tester task t-1 timed out at 2026-06-01T12:00:00Z (ran longer than 600s)",
        ),
        (
            "cancelled",
            {"cancelled_by": "bob", "finished_min_ago": 0},
            "failed",
            "tester task t-1 was cancelled by bob at 2026-06-01T12:00:00Z",
        ),
    ],
)
def test_each_state_of_the_only_task_refuses_with_its_own_reason(
    state: TaskState, fields: dict[str, object], outcome: str, reason: str
) -> None:
    answer = judge([task(1, state, created_min_ago=5, **fields)], {"t-1": ALLOW}, ASK, NOW)
    assert (answer.allowed, answer.outcome, answer.reason, answer.task_id) == (False, outcome, reason, "t-1")
    assert (outcome in gates.WAITED) == (state in ("pending", "queued", "running"))


def test_a_success_older_than_the_max_age_is_stale() -> None:
    old = task(1, "succeeded", created_min_ago=200, finished_min_ago=90)
    answer = judge([old], {"t-1": ALLOW}, ASK, NOW)
    assert (answer.allowed, answer.outcome, answer.task_id) == (False, "stale", "t-1")
    assert answer.reason == (
        "tester task t-1 succeeded at 2026-06-01T10:30:00Z: stale, before 2026-06-01T11:00:00Z (max age 1h)"
    )
    # The same task within a longer max age allows.
    longer = Ask.checked("acme", "acme/widgets", SHA, 2 * 3600)
    assert judge([old], {"t-1": ALLOW}, longer, NOW).allowed


def test_a_success_without_its_guard_decision_on_record_is_never_allowed() -> None:
    done = task(1, "succeeded", created_min_ago=20, finished_min_ago=10)
    for decisions in (
        {},
        {"t-1": Decision(verdict="allow")},
        {"t-1": Decision(verdict="deny", policy_hash="ab")},
    ):
        answer = judge([done], decisions, ASK, NOW)
        assert (answer.allowed, answer.outcome) == (False, "not_allowed")
        assert answer.reason.endswith("but no guard decision naming its policy is on record")


def test_any_success_within_the_max_age_allows_the_newest_proving_it() -> None:
    records = [
        task(1, "failed", created_min_ago=50, finished_min_ago=45, error="flaky"),
        task(2, "succeeded", created_min_ago=40, finished_min_ago=35),
        task(3, "succeeded", created_min_ago=30, finished_min_ago=25),
        task(4, "running", created_min_ago=5),  # a newer run in progress does not hold the deploy back
        task(5, "cancelled", created_min_ago=20, finished_min_ago=15),  # nor one cancelled after
        task(6, "rejected", created_min_ago=3, finished_min_ago=3),  # nor one the guard refused after
    ]
    decisions = {r.id: ALLOW for r in records}
    answer = judge(records, decisions, ASK, NOW)
    assert (answer.allowed, answer.task_id) == (True, "t-3")
    # Without t-3's decision on record, t-2 proves it.
    del decisions["t-3"]
    assert judge(records, decisions, ASK, NOW).task_id == "t-2"


def test_a_failure_that_finished_after_the_last_success_refuses_until_a_new_success() -> None:
    passed = task(1, "succeeded", created_min_ago=40, finished_min_ago=30)
    broke = task(2, "failed", created_min_ago=25, finished_min_ago=20, error="1 failed")
    answer = judge([passed, broke], {"t-1": ALLOW, "t-2": ALLOW}, ASK, NOW)
    assert (answer.allowed, answer.outcome, answer.task_id) == (False, "failed", "t-2")
    assert answer.reason == (
        "tester task t-2 failed at 2026-06-01T11:40:00Z: 1 failed "
        "after task t-1 succeeded at 2026-06-01T11:30:00Z"
    )
    hung = task(2, "timed_out", created_min_ago=25, finished_min_ago=20, reason="ran longer than 60s")
    assert judge([passed, hung], {"t-1": ALLOW}, ASK, NOW).outcome == "failed"
    fixed = task(3, "succeeded", created_min_ago=15, finished_min_ago=10)
    assert judge([passed, broke, fixed], {"t-1": ALLOW, "t-3": ALLOW}, ASK, NOW).task_id == "t-3"


def test_without_a_proving_success_the_newest_task_gives_the_reason() -> None:
    records = [
        task(1, "succeeded", created_min_ago=300, finished_min_ago=290),
        task(2, "failed", created_min_ago=60, finished_min_ago=55, error="boom"),
        task(3, "queued", created_min_ago=2),
    ]
    decisions = {"t-1": ALLOW}
    assert (judge(records, decisions, ASK, NOW).outcome, judge(records, decisions, ASK, NOW).task_id) == (
        "running",
        "t-3",
    )
    assert judge(records[:2], decisions, ASK, NOW).outcome == "failed"
    assert judge(records[:1], decisions, ASK, NOW).outcome == "stale"


def test_an_ask_is_checked_field_by_field() -> None:
    assert Ask.checked("acme", "acme/widgets", "a" * 64, 60).commit == "a" * 64
    assert ASK.labels == {"repo": "acme/widgets", "commit": SHA}
    for field, args in [
        ("commit", ("acme", "acme/widgets", SHA[:12], 60)),
        ("commit", ("acme", "acme/widgets", "g" * 40, 60)),
        ("commit", ("acme", "acme/widgets", SHA.upper(), 60)),
        ("commit", ("acme", "acme/widgets", SHA + "\n", 60)),
        ("repo", ("acme", "", SHA, 60)),
        ("repo", ("acme", "acme widgets", SHA, 60)),
        ("tenant", ("Acme!", "acme/widgets", SHA, 60)),
        ("max_age_s", ("acme", "acme/widgets", SHA, 0)),
        ("max_age_s", ("acme", "acme/widgets", SHA, 400 * 86_400)),
    ]:
        with pytest.raises(BadAsk) as caught:
            Ask.checked(*args)  # type: ignore[arg-type]
        assert caught.value.field == field


def test_the_cli_reads_durations_and_prints_one_line() -> None:
    assert [seconds(t) for t in ("90", "90s", "30m", "24h", "7d", "1.5h")] == [
        90,
        90,
        1800,
        86400,
        604800,
        5400,
    ]
    for bad in ("0", "-1h", "24x", "h", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            seconds(bad)
    refused = judge([], {}, ASK, NOW)
    assert one_line(refused) == f"refused (no_test): {refused.reason}"
    assert gates.span(86_400) == "1d" and gates.span(5400) == "90m" and gates.span(1.5) == "1.5s"


def test_the_orchestrator_may_record_a_decision_and_a_tenant_may_not() -> None:
    subject = "maestro.v1.gate.acme"
    assert permissions(ORCHESTRATOR, "_INBOX_X").may_publish(subject)
    assert not permissions(tenant_principal("acme"), "_INBOX_Y").may_publish(subject)
