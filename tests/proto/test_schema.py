"""proto/schema/ is what `make schema` generates, names every subject, and its examples are real messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from maestro import codec, schema, topics
from proto.v1 import TaskEvent, TaskRecord, TaskRequest


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return schema.render()


@pytest.fixture(scope="module")
def document(files: dict[str, str]) -> dict[str, Any]:
    return json.loads(files[schema.ASYNCAPI_FILE])  # type: ignore[no-any-return]


def test_committed_files_are_what_the_generator_writes(files: dict[str, str]) -> None:
    assert schema.stale(schema.SCHEMA_DIR, files) == [], "proto/schema is stale: run `make schema`"


def test_check_lists_a_stale_file_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert schema.main(["--dir", str(tmp_path)]) == 0
    assert schema.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "TaskRequest.json").write_text("{}\n")
    (tmp_path / "Gone.json").write_text("{}\n")

    assert schema.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "TaskRequest.json" in err and "Gone.json" in err and "asyncapi.json" not in err


def test_output_is_deterministic(files: dict[str, str]) -> None:
    assert schema.render() == files
    for name, text in files.items():
        assert text.endswith("}\n"), name
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_one_json_schema_per_wire_message(files: dict[str, str]) -> None:
    expected = {"TaskRequest", "TaskAssignment", "TaskEvent", "TaskRecord", "DeadLetter"}
    expected |= {"Reserve", "Reservation", "Commit", "Release", "Settlement", "GetLedger", "LedgerView"}
    expected |= {"ApprovalDecision"}
    expected |= {"SetBudget", "BudgetEvents"}
    expected |= {"TaskClaim", "FinishedWork", "WorkerPresence"}  # stored in KV, read by more than one service
    expected |= {"TokenGrant"}  # the API's tokens, written by the CLI, read by the orchestrator
    expected |= {"TimerFired"}  # the body of a durable timer on maestro.v1.timer
    expected |= {"Workflow", "WorkflowEvents", "WorkflowControl", "WorkflowRecord"}
    expected |= {"WaitingTasks", "WaitReasons"}  # why tasks wait, asked of the dispatcher
    expected |= {"LeaderNews"}  # what orchestrator replicas tell the one that leads
    expected |= {"GateDecided"}  # the deploy gate's decisions, kept for an audit
    expected |= {"PullRequestPushed"}  # GitHub's pull requests, from the webhook to the reviews
    expected |= {"Notification"}  # a human task's breached SLA, for the notifier
    expected |= {"DecisionTally"}  # a guard's decisions counted per tenant and interval, for the console
    expected |= {"Plan", "FileChanges", "ModelReview", "Review", "TesterReport"}  # agents' answers, reports
    assert {name.removesuffix(".json") for name in files} == expected | {"asyncapi", "openapi"}
    event_schema = json.loads(files["TaskEvent.json"])
    assert event_schema["discriminator"]["propertyName"] == "kind"
    assert "task.succeeded" in event_schema["discriminator"]["mapping"]
    request_schema = json.loads(files["TaskRequest.json"])
    assert set(request_schema["$defs"]["TaskRequest"]["required"]) == {"tenant", "role", "prompt"}


def test_asyncapi_is_3_0_0_and_names_every_topic_and_endpoint(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    declared_topics = [v for v in vars(topics).values() if isinstance(v, topics.Topic)]
    declared_endpoints = [v for v in vars(topics).values() if isinstance(v, topics.Endpoint)]
    assert len(declared_topics) >= 4 and len(declared_endpoints) >= 4
    for topic in declared_topics:
        assert topic.pattern in addresses
    for endpoint in declared_endpoints:
        assert endpoint.subject in addresses
    events = next(c for c in document["channels"].values() if c["address"] == topics.EVENTS.pattern)
    assert set(events["parameters"]) == {"tenant", "task_id"}
    assert len(events["messages"]) == len(TaskEvent.__args__)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    def walk(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in walk(v)]
        if isinstance(node, list):
            return [r for v in node for r in walk(v)]
        return []

    refs = walk(document)
    assert refs
    for ref in refs:
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def test_every_subject_has_a_sender_and_a_receiver(document: dict[str, Any]) -> None:
    by_channel: dict[str, set[str]] = {}
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[1]
        by_channel.setdefault(channel, set()).add(operation["action"])
    for channel_id, channel in document["channels"].items():
        if channel["address"] is not None:
            assert by_channel.get(channel_id) == {"send", "receive"}, channel_id
    reserve = document["operations"]["guard_send_budgetReserve"]
    assert reserve["reply"]["messages"][0]["$ref"].endswith("/Reservation")


def test_examples_are_valid_messages(document: dict[str, Any]) -> None:
    types = {schema.type_name(t): t for t in schema.wire_types()}
    types.update({schema.type_name(t): t for t in TaskEvent.__args__})
    checked = 0
    for name, message in document["components"]["messages"].items():
        for example in message.get("examples", []):
            decoded = codec.decode(types[name], json.dumps(example["payload"]))
            assert msgspec.to_builtins(decoded) == example["payload"]
            checked += 1
    assert checked >= 8


def test_a_task_request_example_round_trips(document: dict[str, Any]) -> None:
    payload = document["components"]["messages"]["TaskRequest"]["examples"][0]["payload"]
    request = codec.decode(TaskRequest, json.dumps(payload))
    assert codec.decode(TaskRequest, codec.encode(request)) == request
    assert request.tenant == "acme" and request.role == "planner"
    # What a client from another language would send: the schema's required fields only.
    minimal = codec.decode(TaskRequest, b'{"tenant":"acme","role":"tester","prompt":"run"}')
    assert minimal.id
    with pytest.raises(codec.DecodeError, match="role"):
        codec.decode(TaskRequest, b'{"tenant":"acme","role":"wizard","prompt":"x"}')
    assert "TaskRecord" in document["components"]["schemas"]
    assert schema.type_name(TaskRecord) == "TaskRecord"
