"""The doctor's judgement, from facts crafted as a running Maestro gives them: each finding, no server."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from nats.js.api import StreamConfig, StreamInfo, StreamState

from maestro import overdue, topics, topology
from maestro.backlog import Backlog, ConsumerLag, Durable, wanted_durables
from maestro.discovery import EndpointStats, InstanceStats
from maestro.doctor import checks
from maestro.doctor.facts import READ_TASKS, Facts, Letter, OverdueHold, Server, Unread
from maestro.doctor.findings import EXIT_HEALTHY, EXIT_PROBLEM, Finding, exit_code, unreachable
from maestro.doctor.work import MICRO_SERVICES
from maestro.settings import Settings
from proto.v1 import ROLES, TaskRecord, Timeouts

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
SETTINGS = Settings(ack_wait_s=30.0)


def _info(config: StreamConfig, messages: int = 0) -> StreamInfo:
    return StreamInfo(
        config=config,
        state=StreamState(messages=messages, bytes=0, first_seq=0, last_seq=0, consumer_count=0),
    )


def _streams_as_made(settings: Settings) -> dict[str, StreamInfo]:
    """Every stream as maestro/topology.py makes it: the streams as given, the buckets' and the store's with
    what JetStream's KV and object store clients set on them."""
    wanted = topology.topology(settings)
    found = {str(s.name): _info(s) for s in wanted.streams}
    for b in wanted.buckets:
        name = topics.kv_stream(str(b.bucket))
        found[name] = _info(
            StreamConfig(
                name=name,
                description=b.description,
                max_msgs_per_subject=b.history,
                max_age=b.ttl or 0,
                num_replicas=b.replicas,
                allow_direct=b.direct,
                discard_new_per_subject=b.bucket == topics.BUCKET_CLAIMS,
            )
        )
    for s in wanted.stores:
        name = topics.object_store_stream(str(s.bucket))
        found[name] = _info(StreamConfig(name=name, description=s.description, num_replicas=s.replicas))
    return found


def _lag(durable: Durable, **changes: object) -> ConsumerLag:
    lag = ConsumerLag(
        stream=durable.stream,
        consumer=durable.consumer,
        pending=0,
        ack_pending=0,
        redelivered=0,
        waiting=1,
        last_active=None,
        filter_subjects=(),
        ack_wait_s=SETTINGS.ack_wait_s,
        max_deliver=-1,
    )
    return dataclasses.replace(lag, **changes)


GUARD = Durable(topics.STREAM_REQUESTS, topics.DURABLE_GUARD)
SERVICE_DURABLES = (
    GUARD,
    Durable(topics.STREAM_APPROVALS, topics.DURABLE_GUARD_APPROVALS),
    Durable(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR),
    Durable(topics.STREAM_WORKFLOWS, topics.DURABLE_ORCHESTRATOR_WORKFLOWS),
    Durable(topics.STREAM_NOTIFY, topics.DURABLE_NOTIFIER),
)
AGENT_DURABLES = tuple(Durable(topics.STREAM_TASKS, topics.agents_durable(r)) for r in ROLES)
BACKLOGS = tuple(
    _lag(
        Durable(topics.STREAM_WAITING, topics.backlog_durable(r)),
        waiting=0,
        filter_subjects=(topics.WAITING.filter(r),),
    )
    for r in ROLES
)
REVIEWS = (
    Durable(topics.STREAM_HOOKS, topics.DURABLE_ORCHESTRATOR_REVIEWS),
    Durable(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR_REVIEW_ENDS),
)


def _backlog(*lags: ConsumerLag, missing: tuple[Durable, ...] = REVIEWS, dlq: int | None = 0) -> Backlog:
    present = lags or (*(_lag(d) for d in (*SERVICE_DURABLES, *AGENT_DURABLES)), *BACKLOGS)
    return Backlog(consumers=present, missing=missing, dlq_depth=dlq, read_at=NOW)


def _instance(name: str, requests: int = 10) -> InstanceStats:
    endpoint = EndpointStats(
        name="reserve", num_requests=requests, num_errors=1, average_processing_time=2_000_000
    )
    return InstanceStats(name=name, id=f"{name}-1", version="1.0.0", started=NOW, endpoints=[endpoint])


def healthy(**changes: object) -> Facts:
    """Facts as a healthy mesh gives them: everything made, consumed, served, and nothing late."""
    facts = Facts(
        server=Server(url="nats://127.0.0.1:4222", version="2.12.1", jetstream=True),
        read_at=NOW,
        streams=_streams_as_made(SETTINGS),
        backlog=_backlog(),
        services=tuple(_instance(name) for name in MICRO_SERVICES),
        served_roles=frozenset(ROLES),
    )
    return dataclasses.replace(facts, **changes)


def _record(state: str, **fields: object) -> TaskRecord:
    base = TaskRecord(id="t-late", tenant="acme", state=state, created_at=NOW, updated_at=NOW, role="tester")  # type: ignore[arg-type]
    return msgspec.structs.replace(base, **fields)


def not_ok(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity != "ok"]


def one(findings: list[Finding], check: str) -> Finding:
    found = [f for f in not_ok(findings) if f.check == check]
    assert len(found) == 1, found
    return found[0]


def test_a_healthy_mesh_is_all_ok_and_exits_0() -> None:
    findings = checks.diagnose(healthy(), SETTINGS)
    assert not_ok(findings) == []
    assert exit_code(findings) == EXIT_HEALTHY
    checked = {(f.check, f.subject) for f in findings}
    assert ("stream", topics.STREAM_REQUESTS) in checked and ("bucket", topics.BUCKET_TASKS) in checked
    assert ("store", topics.STORE_ARTIFACTS) in checked and ("consumer", topics.DURABLE_GUARD) in checked
    service = next(f for f in findings if f.subject == topics.BUDGET_SERVICE)
    assert "version 1.0.0" in service.message and "10 requests, 1 errors" in service.message


def test_a_server_without_jetstream_is_a_problem() -> None:
    findings = checks.diagnose(healthy(server=Server("nats://x:4222", "2.12.1", jetstream=False)), SETTINGS)
    assert one(findings, "server").severity == "problem"
    assert "JetStream" in one(findings, "server").fix
    assert exit_code(findings) == EXIT_PROBLEM


def test_a_server_older_than_message_schedules_is_a_problem() -> None:
    findings = checks.diagnose(healthy(server=Server("nats://x:4222", "2.11.9", jetstream=True)), SETTINGS)
    finding = one(findings, "server")
    assert finding.severity == "problem" and "2.11.9" in finding.message and "2.12" in finding.fix


@pytest.mark.parametrize(
    ("check", "stream", "subject"),
    [
        ("stream", topics.STREAM_GATE, topics.STREAM_GATE),
        ("bucket", topics.kv_stream(topics.BUCKET_WORKERS), topics.BUCKET_WORKERS),
        ("store", topics.object_store_stream(topics.STORE_ARTIFACTS), topics.STORE_ARTIFACTS),
    ],
)
def test_a_missing_stream_bucket_or_store_is_a_problem_naming_it(
    check: str, stream: str, subject: str
) -> None:
    streams = dict(_streams_as_made(SETTINGS))
    del streams[stream]
    findings = checks.diagnose(healthy(streams=streams), SETTINGS)
    finding = one(findings, check)
    assert (finding.subject, finding.severity) == (subject, "problem")
    assert f"{stream} is missing" in finding.message and "start the orchestrator" in finding.fix


def test_replicas_other_than_the_settings_say_are_a_warning_naming_both() -> None:
    # The streams were made with one replica; this shell says the cluster runs three.
    findings = checks.diagnose(healthy(), dataclasses.replace(SETTINGS, stream_replicas=3))
    drifted = not_ok(findings)
    assert {f.check for f in drifted} == {"stream", "bucket", "store"}
    assert all(f.severity == "warn" for f in drifted)
    events = next(f for f in drifted if f.subject == topics.STREAM_EVENTS)
    assert "num_replicas is 1, Maestro makes it 3" in events.message
    assert "MAESTRO_STREAM_REPLICAS" in events.fix
    assert exit_code(findings) == EXIT_HEALTHY


def test_a_stream_that_lost_a_subject_is_a_problem_and_a_shorter_age_a_warning() -> None:
    streams = dict(_streams_as_made(SETTINGS))
    tasks = streams[topics.STREAM_TASKS]
    streams[topics.STREAM_TASKS] = _info(dataclasses.replace(tasks.config, subjects=[topics.TASKS.all]))
    dlq = streams[topics.STREAM_DLQ]
    streams[topics.STREAM_DLQ] = _info(dataclasses.replace(dlq.config, max_age=3600.0))
    findings = checks.diagnose(healthy(streams=streams), SETTINGS)
    by_subject = {f.subject: f for f in not_ok(findings)}
    assert by_subject[topics.STREAM_TASKS].severity == "problem"
    assert "subjects is maestro.v1.task.>" in by_subject[topics.STREAM_TASKS].message
    assert by_subject[topics.STREAM_DLQ].severity == "warn"
    assert "max_age is 3600.0" in by_subject[topics.STREAM_DLQ].message


def test_a_missing_service_consumer_is_a_problem_and_the_review_ones_are_optional() -> None:
    lags = tuple(_lag(d) for d in (*SERVICE_DURABLES[1:], *AGENT_DURABLES))
    findings = checks.diagnose(healthy(backlog=_backlog(*lags, missing=(GUARD, *REVIEWS))), SETTINGS)
    finding = one(findings, "consumer")
    assert (finding.subject, finding.severity) == (topics.DURABLE_GUARD, "problem")
    assert "MAESTRO_REQ has no consumer guard" in finding.message and "the guard" in finding.fix


@pytest.mark.parametrize(
    ("changes", "severity", "said"),
    [
        (
            {"waiting": 0, "pending": 7},
            "problem",
            "7 pending, 0 in progress, 0 redelivered, and nobody pulls",
        ),
        ({"waiting": 0}, "warn", "nobody pulls from it (nothing waits yet)"),
        ({"redelivered": 3, "ack_pending": 3}, "warn", "3 in progress, 3 redelivered"),
        ({"pending": checks.BACKLOG_WARN}, "warn", f"a backlog of {checks.BACKLOG_WARN} pending"),
        ({"ack_wait_s": 60.0}, "warn", "its ack wait is 60s, these settings say 30s"),
        ({"max_deliver": 5}, "warn", "at most 5 times, then the server drops it"),
    ],
)
def test_a_consumer_that_falls_behind_or_is_set_up_otherwise_is_found(
    changes: dict[str, object], severity: str, said: str
) -> None:
    lags = (_lag(GUARD, **changes), *(_lag(d) for d in (*SERVICE_DURABLES[1:], *AGENT_DURABLES)))
    finding = one(checks.diagnose(healthy(backlog=_backlog(*lags)), SETTINGS), "consumer")
    assert (finding.subject, finding.severity) == (topics.DURABLE_GUARD, severity)
    assert said in finding.message and finding.fix


def test_consumers_waiting_for_work_while_in_progress_are_ok() -> None:
    # Every slot busy: no pull request stands, but the consumer is worked.
    lags = (
        _lag(GUARD, waiting=0, ack_pending=256, pending=10),
        *(_lag(d) for d in SERVICE_DURABLES[1:]),
        *BACKLOGS,
    )
    assert not_ok(checks.diagnose(healthy(backlog=_backlog(*lags)), SETTINGS)) == []


def test_a_dlq_with_a_recent_letter_is_a_problem_quoting_the_newest_reasons() -> None:
    letters = (
        Letter(9, "guard", "undecodable: JSON is malformed\nsecond line", NOW - timedelta(seconds=30)),
        Letter(8, "agents", "exhausted 5 deliveries", NOW - timedelta(hours=2)),
    )
    findings = checks.diagnose(healthy(backlog=_backlog(dlq=12), letters=letters), SETTINGS)
    finding = one(findings, "dlq")
    assert finding.severity == "problem"
    assert finding.message.startswith("12 dead letters, the newest 30s ago")
    assert "#9 guard: undecodable: JSON is malformed second line; #8 agents: exhausted" in finding.message
    assert "maestro dlq ls" in finding.fix and "maestro dlq replay" in finding.fix


def test_a_dlq_of_old_letters_only_is_a_warning() -> None:
    letters = (Letter(1, "guard", "undecodable", NOW - timedelta(days=3)),)
    finding = one(checks.diagnose(healthy(backlog=_backlog(dlq=1), letters=letters), SETTINGS), "dlq")
    assert finding.severity == "warn" and "the newest 3d ago" in finding.message


LATE = timedelta(seconds=overdue.GRACE_S + 5)


@pytest.mark.parametrize(
    "record",
    [
        _record(
            "queued", timeouts=Timeouts(schedule_to_start_s=10), queued_at=NOW - LATE - timedelta(seconds=10)
        ),
        _record(
            "queued",
            timeouts=Timeouts(schedule_to_start_s=10),
            queued_at=NOW - timedelta(days=1),
            next_retry_at=NOW - LATE - timedelta(seconds=10),
        ),
        _record(
            "running",
            timeouts=Timeouts(start_to_close_s=60),
            started_at=NOW - LATE - timedelta(seconds=60),
            attempts=1,
        ),
    ],
)
def test_a_task_past_its_time_out_is_stuck(record: TaskRecord) -> None:
    findings = checks.diagnose(healthy(open_tasks=(record,)), SETTINGS)
    finding = one(findings, "tasks")
    assert (finding.subject, finding.severity) == ("t-late", "problem")
    assert f"{record.state} 1m past its time-out (acme, tester)" == finding.message
    assert "orchestrator" in finding.fix and "maestro cancel t-late" in finding.fix


@pytest.mark.parametrize(
    "record",
    [
        # Within the grace the orchestrator's timer has to end it.
        _record("queued", timeouts=Timeouts(schedule_to_start_s=10), queued_at=NOW - timedelta(seconds=20)),
        # No time-out: it may wait as long as it takes.
        _record("queued", queued_at=NOW - timedelta(days=1)),
        # A later attempt started when the record does not say: not judged.
        _record(
            "running", timeouts=Timeouts(start_to_close_s=1), started_at=NOW - timedelta(days=1), attempts=2
        ),
    ],
)
def test_a_task_within_its_time_out_or_without_one_is_not_stuck(record: TaskRecord) -> None:
    assert not_ok(checks.diagnose(healthy(open_tasks=(record,)), SETTINGS)) == []


def test_budget_holds_past_their_ttl_for_longer_than_two_sweeps_are_a_problem() -> None:
    sweeps = timedelta(seconds=2 * SETTINGS.budget_sweep_s)
    holds = (
        OverdueHold("acme", "t1-a1", 1_500_000, NOW - sweeps - timedelta(minutes=5)),
        OverdueHold("acme", "t2-a1", 500_000, NOW - sweeps - timedelta(seconds=1)),
        OverdueHold("globex", "t3-a1", 1, NOW - timedelta(seconds=1)),  # the next sweep's
    )
    finding = one(checks.diagnose(healthy(holds=holds), SETTINGS), "holds")
    assert finding.severity == "problem"
    assert finding.message == "2 holds ($2.000000) past their ttl, the oldest by 6m: acme (2)"
    assert "budget service" in finding.fix
    assert not_ok(checks.diagnose(healthy(holds=holds[2:]), SETTINGS)) == []


def test_a_micro_service_nobody_runs_is_a_problem() -> None:
    facts = healthy(services=tuple(_instance(n) for n in MICRO_SERVICES if n != topics.BUDGET_SERVICE))
    finding = one(checks.diagnose(facts, SETTINGS), "service")
    assert (finding.subject, finding.severity) == (topics.BUDGET_SERVICE, "problem")
    assert "no instance answers $SRV.STATS" == finding.message


def test_no_dispatcher_or_two_at_once_is_a_problem_that_says_the_lead_is_at_stake() -> None:
    others = tuple(_instance(n) for n in (topics.BUDGET_SERVICE, topics.ORCHESTRATOR_SERVICE))
    finding = one(checks.diagnose(healthy(services=others), SETTINGS), "service")
    assert (finding.subject, finding.severity) == (topics.DISPATCHER_SERVICE, "problem")
    assert finding.message == "no orchestrator replica leads: nothing dispatches"
    two = msgspec.structs.replace(_instance(topics.DISPATCHER_SERVICE), id="dispatcher-2")
    facts = healthy(services=(*others, _instance(topics.DISPATCHER_SERVICE), two))
    finding = one(checks.diagnose(facts, SETTINGS), "service")
    assert finding.severity == "problem" and finding.message.startswith(
        "2 orchestrator replicas lead at once"
    )


def test_a_role_without_worker_is_a_warning_then_a_problem_once_its_tasks_queue() -> None:
    served = frozenset(ROLES) - {"tester"}
    # Its consumer, idle since its last agent left, is said once: by the workers check.
    lags = (*(_lag(d) for d in SERVICE_DURABLES), *(_lag(d, waiting=0) for d in AGENT_DURABLES))
    facts = healthy(served_roles=served, backlog=_backlog(*lags))
    finding = one(checks.diagnose(facts, SETTINGS), "workers")
    assert (finding.subject, finding.severity) == ("tester", "warn")
    assert "MAESTRO_ROLES=tester" in finding.fix
    queued = (*facts.open_tasks, _record("queued", id="t-waits"))
    finding = one(checks.diagnose(dataclasses.replace(facts, open_tasks=queued), SETTINGS), "workers")
    assert finding.severity == "problem"
    assert finding.message == "no running agent serves it; 1 of its tasks are queued for one"


def test_what_could_not_be_read_is_a_warning_and_its_check_is_left_out() -> None:
    late = _record("queued", timeouts=Timeouts(schedule_to_start_s=1), queued_at=NOW - timedelta(days=1))
    facts = healthy(open_tasks=(late,), unread=(Unread(READ_TASKS, "maestro_tasks holds 200000 records"),))
    findings = checks.diagnose(facts, SETTINGS)
    finding = one(findings, "read")
    assert finding.severity == "warn" and "could not read tasks: maestro_tasks holds" in finding.message
    assert not [f for f in findings if f.check == "tasks"]


def test_the_unreachable_server_finding_says_where_to_point() -> None:
    finding = unreachable("nats://x:4222", "cannot reach NATS")
    assert finding.severity == "problem" and "MAESTRO_NATS_URL" in finding.fix


def test_each_role_s_backlog_is_said_and_a_missing_or_misfiltered_backlog_consumer_is_a_warning() -> None:
    findings = checks.diagnose(healthy(), SETTINGS)
    said = next(f for f in findings if f.check == "backlog")
    assert said.message == "waiting for their turn: " + ", ".join(f"{r} 0" for r in ROLES)
    tester = topics.backlog_durable("tester")
    others = tuple(lag for lag in BACKLOGS if lag.consumer != tester)
    services = tuple(_lag(d) for d in (*SERVICE_DURABLES, *AGENT_DURABLES))
    missing = _backlog(*services, *others, missing=(*REVIEWS, Durable(topics.STREAM_WAITING, tester)))
    finding = one(checks.diagnose(healthy(backlog=missing), SETTINGS), "backlog")
    assert (finding.subject, finding.severity) == (tester, "warn")
    assert "an autoscaler reading it sees no backlog" in finding.message and "orchestrator" in finding.fix
    misfiltered = _lag(
        Durable(topics.STREAM_WAITING, tester), waiting=0, filter_subjects=(topics.WAITING.all,)
    )
    finding = one(
        checks.diagnose(healthy(backlog=_backlog(*services, *others, misfiltered)), SETTINGS), "backlog"
    )
    assert finding.message == f"it counts {topics.WAITING.all}, not {topics.WAITING.filter('tester')}"


def test_without_fair_dispatch_no_backlog_consumer_is_expected() -> None:
    services = tuple(_lag(d) for d in (*SERVICE_DURABLES, *AGENT_DURABLES))
    findings = checks.diagnose(
        healthy(backlog=_backlog(*services)), dataclasses.replace(SETTINGS, fair_dispatch=False)
    )
    assert not_ok(findings) == [] and not [f for f in findings if f.check == "backlog"]
    assert wanted_durables(SETTINGS.roles, fair_dispatch=False) == (
        *SERVICE_DURABLES[:3],
        REVIEWS[1],
        SERVICE_DURABLES[3],
        REVIEWS[0],
        SERVICE_DURABLES[4],
        *AGENT_DURABLES,
    )
