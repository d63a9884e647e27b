"""The NATS permission table, rule by rule, without a server (tests/e2e/test_nats_isolation.py: with one)."""

from __future__ import annotations

import pytest

from maestro import topics
from maestro.access import nats_permissions as table
from maestro.access.nats_permissions import Permissions

TENANTS = ("acme", "globex")
EVERYONE = table.principals(TENANTS)


def of(principal: str) -> Permissions:
    return table.permissions(principal, topics.inbox_prefix(f"U{principal.upper().replace('-', '')}"))


def publishers(subject: str) -> set[str]:
    return {p for p in EVERYONE if of(p).may_publish(subject)}


def subscribers(subject: str) -> set[str]:
    return {p for p in EVERYONE if of(p).may_subscribe(subject)}


ACME, GLOBEX = table.tenant_principal("acme"), table.tenant_principal("globex")


def test_every_principal_is_listed_once_and_an_unknown_one_is_refused() -> None:
    assert EVERYONE == ("admin", "guard", "budget", "orchestrator", "agents", ACME, GLOBEX)
    assert table.principals(["b", "a", "a"])[-2:] == ("tenant-a", "tenant-b")
    with pytest.raises(ValueError, match="no such principal"):
        table.permissions("intruder", "_INBOX_X")
    with pytest.raises(topics.SubjectError):
        table.tenant_principal("a.b")


def test_the_guard_and_the_orchestrator_hand_tasks_over_the_agents_and_tenants_cannot() -> None:
    assert publishers(topics.TASKS.subject("tester", "acme")) == {"admin", "guard", "orchestrator"}
    assert publishers(topics.REDISPATCH.subject("tester", "t1")) == {"admin", "orchestrator"}


def test_only_the_budget_serves_the_budget_and_only_admin_sets_one() -> None:
    for endpoint in (topics.BUDGET_RESERVE, topics.BUDGET_SET, topics.BUDGET_COMMIT):
        assert subscribers(endpoint.partition_subject("acme")) == {"admin", "budget"}
    assert subscribers("maestro.v1.budget.>") == {"admin", "budget"}
    # The orchestrator's API sets budgets for an operator's token (services/orchestrator/admin_api.py).
    assert publishers(topics.BUDGET_SET.partition_subject("acme")) == {"admin", "orchestrator"}
    assert publishers(topics.BUDGET_RESERVE.partition_subject("acme")) == {"admin", "guard", "orchestrator"}
    assert publishers(topics.BUDGET_COMMIT.partition_subject("acme")) == {"admin", "agents"}
    assert of("budget").responses and of("orchestrator").responses
    assert not any(of(p).responses for p in ("guard", "agents", ACME))


@pytest.mark.parametrize(
    ("bucket", "writers"),
    [
        (topics.BUCKET_TASKS, {"admin", "orchestrator"}),
        (topics.BUCKET_WORKFLOWS, {"admin", "orchestrator"}),
        (topics.BUCKET_BUDGET, {"admin", "budget"}),
        # The API pushes bundles and makes tokens for an operator's token.
        (topics.BUCKET_POLICY, {"admin", "orchestrator"}),
        (topics.BUCKET_TOKENS, {"admin", "orchestrator"}),
        (topics.BUCKET_PARKED, {"admin", "guard"}),
        (topics.BUCKET_WORK, {"admin", "agents"}),
        (topics.BUCKET_WORKERS, {"admin", "agents"}),
        (topics.BUCKET_ATTEMPTS, {"admin", "agents", "orchestrator"}),
        # Write-once (maestro/topology.py): a claim cannot be taken over, so a tenant may claim its ids.
        (topics.BUCKET_CLAIMS, {"admin", "guard", "orchestrator", ACME, GLOBEX}),
    ],
)
def test_who_writes_each_bucket(bucket: str, writers: set[str]) -> None:
    assert publishers(topics.kv_subject(bucket, "k1")) == writers


def test_the_orchestrator_reads_the_tokens_it_checks_but_no_one_else_does() -> None:
    get = topics.js_api(
        "DIRECT", "GET", topics.kv_stream(topics.BUCKET_TOKENS), "$KV", topics.BUCKET_TOKENS, "k1"
    )
    assert {"admin", "orchestrator"} <= publishers(get)
    assert not publishers(get) & {"agents", ACME, GLOBEX}


def test_nobody_but_admin_deletes_or_purges_a_stream_or_deletes_a_message() -> None:
    for stream in (
        topics.STREAM_EVENTS,
        topics.STREAM_REQUESTS,
        topics.STREAM_TASKS,
        topics.kv_stream("maestro_tasks"),
    ):
        assert publishers(topics.js_api("STREAM", "DELETE", stream)) == {"admin"}
        assert publishers(topics.stream_purge_subject(stream)) == {"admin"}
        assert publishers(topics.message_delete_subject(stream)) == {"admin"}
    # What is handed over leaves the waiting stream; a replaced object's chunks leave the store.
    assert publishers(topics.stream_purge_subject(topics.STREAM_WAITING)) == {"admin", "orchestrator"}
    artifacts = topics.object_store_stream(topics.STORE_ARTIFACTS)
    assert publishers(topics.stream_purge_subject(artifacts)) == {"admin", "agents"}
    assert publishers(topics.js_api("STREAM", "DELETE", artifacts)) == {"admin"}


def test_only_the_orchestrator_and_admin_create_streams() -> None:
    assert publishers(topics.js_api("STREAM", "CREATE", topics.STREAM_EVENTS)) == {"admin", "orchestrator"}
    assert publishers(topics.js_api("STREAM", "CREATE", "ELSEWHERE")) == {"admin"}
    assert publishers(topics.js_api("STREAM", "LIST")) == set(EVERYONE)  # what ensure() reads first


def test_a_tenant_publishes_its_own_requests_only_and_nothing_a_service_does() -> None:
    assert publishers(topics.REQUESTS.subject("acme")) == {"admin", "orchestrator", ACME}
    acme = of(ACME)
    for subject in (
        topics.REQUESTS.subject("globex"),
        topics.EVENTS.subject("acme", "t1"),
        topics.EVENTS.subject("globex", "t1"),
        topics.APPROVALS.subject("acme"),
        topics.WORKFLOWS.subject("acme"),
        topics.DLQ.subject("guard"),
        topics.kv_subject(topics.BUCKET_POLICY, "bundle"),
        topics.js_api("STREAM", "MSG", "GET", topics.kv_stream(topics.BUCKET_TASKS)),
        topics.js_api("DIRECT", "GET", topics.STREAM_EVENTS),
        topics.js_api("STREAM", "INFO", topics.STREAM_EVENTS),  # its subjects_filter would list every task
        topics.js_ack_filter(topics.STREAM_EVENTS).replace(">", "orchestrator.1.5.5.0.0"),
    ):
        assert not acme.may_publish(subject), subject


def test_a_tenant_reads_only_its_own_events_through_a_filtered_consumer() -> None:
    acme = of(ACME)

    def create(name: str, filter_: str) -> str:
        return topics.js_api("CONSUMER", "CREATE", topics.STREAM_EVENTS, name, filter_)

    assert acme.may_publish(create("w1", "maestro.v1.evt.acme.>"))
    assert acme.may_publish(create("w1", topics.EVENTS.subject("acme", "t1")))
    assert not acme.may_publish(create("w1", topics.EVENTS.subject("globex", "t1")))
    assert not acme.may_publish(create("w1", topics.EVENTS.where(task_id="t1")))  # any tenant's
    assert not acme.may_publish(create("w1", "maestro.v1.evt.>"))
    assert not acme.may_publish(
        topics.js_api("CONSUMER", "CREATE", topics.STREAM_EVENTS)
    )  # filter in the body
    assert not acme.may_publish(topics.js_api("CONSUMER", "DURABLE", "CREATE", topics.STREAM_EVENTS, "w1"))
    # The orchestrator's durable: neither pulled from, nor refiltered, nor deleted.
    assert not acme.may_publish(
        topics.consumer_next_subject(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR)
    )
    assert not acme.may_publish(create(topics.DURABLE_ORCHESTRATOR, "maestro.v1.evt.acme.>"))
    assert not acme.may_publish(topics.js_api("CONSUMER", "DELETE", topics.STREAM_EVENTS, "orchestrator"))
    assert acme.may_publish(topics.consumer_next_subject(topics.STREAM_EVENTS, "w1"))
    assert not acme.may_subscribe(topics.EVENTS.all)
    assert not acme.may_subscribe("maestro.v1.evt.acme.>")  # core NATS: not even its own (read them stored)


def test_the_agents_read_their_tasks_and_write_neither_records_nor_budgets() -> None:
    agents = of("agents")
    assert agents.may_publish(topics.consumer_next_subject(topics.STREAM_TASKS, "agents-tester"))
    assert agents.may_publish(
        topics.js_ack_filter(topics.STREAM_TASKS).replace(">", "agents-tester.1.2.3.4.0")
    )
    assert agents.may_publish(topics.EVENTS.subject("acme", "t1"))
    assert agents.may_subscribe(topics.STOP_NOTICES.all)
    for subject in (
        topics.kv_subject(topics.BUCKET_TASKS, "t1"),
        topics.kv_subject(topics.BUCKET_BUDGET, "acme"),
        topics.kv_subject(topics.BUCKET_POLICY, "bundle"),
        topics.TASKS.subject("tester", "acme"),
        topics.BUDGET_RESERVE.partition_subject("acme"),
        topics.REQUESTS.subject("acme"),
        topics.APPROVALS.subject("acme"),
        topics.consumer_next_subject(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR),
        topics.js_api("STREAM", "MSG", "GET", topics.kv_stream(topics.BUCKET_TOKENS)),
        topics.js_api("DIRECT", "GET", topics.kv_stream(topics.BUCKET_BUDGET)),
    ):
        assert not agents.may_publish(subject), subject
    assert not agents.may_subscribe(topics.REQUESTS.all)


def test_each_user_subscribes_to_its_own_inbox_and_no_one_elses() -> None:
    for principal in EVERYONE:
        rules = table.permissions(principal, "_INBOX_UOWN")
        assert rules.may_subscribe("_INBOX_UOWN.abc.*")
        assert principal == "admin" or not rules.may_subscribe("_INBOX_UOTHER.abc.*")
        assert principal == "admin" or not rules.may_subscribe(f"{topics.INBOX_PREFIX}.>")
        assert principal == "admin" or not rules.may_publish("_INBOX_UOTHER.abc.1")


def test_nats_subject_matching() -> None:
    rules = Permissions(publish=("a.*.c", "b.>"), subscribe=(), publish_deny=("b.x.>",))
    assert rules.may_publish("a.b.c") and rules.may_publish("b.y") and rules.may_publish("b.y.z")
    assert not rules.may_publish("a.b.c.d") and not rules.may_publish("b") and not rules.may_publish("b.x.1")
