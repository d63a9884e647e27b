"""The OpenAPI document is valid OpenAPI 3.1, lists every operation of the table once, and its schemas are
what msgspec encodes: real messages validate against them, and a wrong one does not."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from maestro import codec, openapi
from maestro.listing import Page
from maestro.operations import GET_TASK_EVENTS, LIST_TASKS, OPERATIONS, SUBMIT_TASK
from proto.v1 import ContextFile, RetryPolicy, Succeeded, TaskRecord, TaskRequest, Timeouts, Usage
from proto.v1.api import ApiError, Problem

AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE = "urn:maestro:openapi"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.document()


def operations_of(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def validator_at(document: dict[str, Any], *where: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator of the schema at `where` in the document, its $refs resolved there."""
    registry: Registry[Any] = Registry().with_resource(
        BASE, Resource.from_contents(document, default_specification=DRAFT202012)
    )
    pointer = "".join("/" + quote(part.replace("~", "~0").replace("/", "~1")) for part in where)
    return Draft202012Validator(
        {"$ref": f"{BASE}#{pointer}"}, registry=registry, format_checker=FormatChecker()
    )


def schema_validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    return validator_at(document, "components", "schemas", name)


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)

    broken = copy.deepcopy(document)
    del broken["paths"]["/v1/tasks/{id}"]["get"]["parameters"]  # {id} no longer declared
    with pytest.raises(OpenAPIValidationError):
        validate(broken, cls=OpenAPIV31SpecValidator)


def test_every_operation_is_there_once_with_a_unique_id(document: dict[str, Any]) -> None:
    found = [(method, path, operation["operationId"]) for method, path, operation in operations_of(document)]
    assert sorted(found) == sorted((op.method, op.path, op.id) for op in OPERATIONS)
    ids = [operation_id for _, _, operation_id in found]
    assert len(ids) == len(set(ids)) == len(OPERATIONS)
    assert {tag["name"] for tag in document["tags"]} == {op.tag for op in OPERATIONS}


def test_guarded_operations_need_the_bearer_token_and_answer_401(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "mst_" in scheme["description"]
    by_id = {operation["operationId"]: operation for _, _, operation in operations_of(document)}
    for op in OPERATIONS:
        operation = by_id[op.id]
        if op.any_token:
            # Any valid token: a bearer requirement naming no scope.
            assert operation["security"] == [{"bearer": []}], op.id
            assert "401" in operation["responses"], op.id
            continue
        if op.scope is None:
            assert operation["security"] == [], op.id
            # A webhook answers 401 to a wrong signature, never with a bearer challenge.
            unsigned = operation["responses"].get("401")
            assert unsigned is None or (op.tag == "hooks" and "headers" not in unsigned), op.id
            continue
        assert operation["security"] == [{"bearer": [op.scope]}], op.id
        assert operation["x-maestro-scope"] == op.scope
        assert f"`{op.scope}`" in operation["description"]
        unauthorized = operation["responses"]["401"]
        assert unauthorized["headers"] == {
            "WWW-Authenticate": {"$ref": "#/components/headers/WWW-Authenticate"}
        }
        assert ("operator only" in operation["description"]) == op.operator, op.id


def test_every_error_answer_is_an_api_error(document: dict[str, Any]) -> None:
    errors = 0
    for _, _, operation in operations_of(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}
                }, (operation["operationId"], status)
                errors += 1
    assert errors > 3 * len(OPERATIONS)  # every /v1 route names at least 400, 401, 503


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    def walk(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in walk(v)]
        if isinstance(node, list):
            return [r for v in node for r in walk(v)]
        return []

    refs = walk(document)
    assert len(refs) > 100
    for ref in refs:
        target: Any = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


def test_answers_of_one_status_keep_every_media_type(document: dict[str, Any]) -> None:
    ok = document["paths"][GET_TASK_EVENTS.path]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"application/json", "text/event-stream"}
    assert ok["content"]["application/json"]["schema"]["type"] == "array"
    assert "text/event-stream" in ok["description"]
    policy = document["paths"]["/v1/policy"]["put"]["requestBody"]
    assert policy["content"] == {"application/yaml": {"schema": {"type": "string"}}}


def test_parameters_are_typed_and_repeated_ones_are_arrays(document: dict[str, Any]) -> None:
    params = {p["name"]: p for p in document["paths"][LIST_TASKS.path]["get"]["parameters"]}
    assert params["label"]["in"] == "query"
    assert params["label"]["schema"]["type"] == "array"
    assert (params["label"]["style"], params["label"]["explode"]) == ("form", True)
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    role = re.compile(params["role"]["schema"]["pattern"])  # an agent role, or a human queue
    assert role.match("tester") and role.match("human:security") and not role.match("wizard")
    submit = document["paths"][SUBMIT_TASK.path]["post"]
    (traceparent,) = submit["parameters"]
    assert (traceparent["in"], traceparent["required"]) == ("header", False)


def test_component_schemas_have_every_field_msgspec_encodes(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    structs = {
        t
        for op in OPERATIONS
        for t in (op.body, *(a.body for a in op.answers))
        if isinstance(t, type) and issubclass(t, msgspec.Struct)
    }
    assert {TaskRequest, TaskRecord, ApiError} <= structs
    for struct in structs:
        config = struct.__struct_config__
        tag = {config.tag_field} if config.tag is not None else set()  # an event names its kind
        encoded = set(struct.__struct_encode_fields__) | tag
        assert set(schemas[struct.__name__]["properties"]) == encoded, struct


def test_real_messages_validate_against_their_schemas(document: dict[str, Any]) -> None:
    request = TaskRequest(
        id="task-0001",
        tenant="acme",
        role="tester",
        prompt="run the tests",
        context=[ContextFile(path="src/app.py", content="print(1)\n")],
        commands=["pytest -q"],
        model="offline",
        data_region="eu",
        data_classes=["pii"],
        labels={"repo": "acme/app"},
        timeouts=Timeouts(schedule_to_start_s=60, start_to_close_s=600),
        retry=RetryPolicy(max_attempts=2),
        max_cost_micro_usd=5_000,
        priority=7,
    )
    record = TaskRecord(
        id="task-0001",
        tenant="acme",
        state="succeeded",
        created_at=AT,
        updated_at=AT,
        role="tester",
        labels={"repo": "acme/app"},
        usage=Usage(model="offline", input_tokens=12, output_tokens=24),
        cost_micro_usd=396,
        started_at=AT,
        finished_at=AT,
        retry=RetryPolicy(),
    )
    event = Succeeded(task_id="task-0001", tenant="acme", at=AT, worker="agents-1", output="ok")
    error = ApiError(error="bad bundle", field="$.rules", problems=[Problem(message="no such rule", line=3)])
    cases: list[tuple[str, Any]] = [
        ("TaskRequest", request),
        ("TaskRecord", record),
        ("Page_TaskRecord_", Page(items=[record], next_cursor="abc")),
        ("ApiError", error),
    ]
    for name, message in cases:
        schema_validator(document, name).validate(json.loads(codec.encode(message)))

    events = validator_at(
        document,
        "paths",
        GET_TASK_EVENTS.path,
        "get",
        "responses",
        "200",
        "content",
        "application/json",
        "schema",
    )
    events.validate(json.loads(codec.encode([event])))
    with pytest.raises(ValidationError):
        events.validate([json.loads(codec.encode(event)) | {"kind": "task.nope"}])

    wrong = json.loads(codec.encode(request)) | {"role": "astronaut"}
    with pytest.raises(ValidationError):
        schema_validator(document, "TaskRequest").validate(wrong)
    with pytest.raises(ValidationError):
        schema_validator(document, "TaskRecord").validate(
            json.loads(codec.encode(record)) | {"created_at": 1}
        )


def test_request_examples_are_bodies_the_api_decodes(document: dict[str, Any]) -> None:
    checked = 0
    for op in OPERATIONS:
        if not op.examples:
            continue
        content = document["paths"][op.path][op.method.lower()]["requestBody"]["content"][op.body_media]
        for name, example in content["examples"].items():
            codec.decode(op.body, json.dumps(example["value"]))
            assert example["value"] == op.examples[name]
            checked += 1
    assert checked >= 3


def test_sdk_and_cli_are_named_or_their_absence_explained(document: dict[str, Any]) -> None:
    for _, _, operation in operations_of(document):
        assert ("x-maestro-sdk" in operation) != ("x-maestro-no-sdk" in operation), operation["operationId"]
    submit = document["paths"][SUBMIT_TASK.path]["post"]
    assert (submit["x-maestro-sdk"], submit["x-maestro-cli"]) == ("submit", "submit")


def test_the_document_is_deterministic_and_json(document: dict[str, Any]) -> None:
    assert json.dumps(openapi.document(), sort_keys=True) == json.dumps(document, sort_keys=True)
    assert msgspec.json.decode(msgspec.json.encode(document)) == document


def test_an_undocumented_tag_or_header_stops_the_generator() -> None:
    with pytest.raises(openapi.OpenApiError, match="nowhere"):
        openapi.document([dataclasses.replace(SUBMIT_TASK, tag="nowhere")])
    odd = dataclasses.replace(SUBMIT_TASK.answers[0], headers=("X-Odd",))
    with pytest.raises(openapi.OpenApiError, match="X-Odd"):
        openapi.document([dataclasses.replace(SUBMIT_TASK, answers=(odd,))])
