"""SDK parity: every operation of the OpenAPI document has its `Client` call and `maestro` command, taking and
answering the same msgspec types, or says why it has none (`x-maestro-no-sdk`).

The checker reads the document, not maestro/operations.py: the document is the contract a user reads. Where
the SDK's type differs from the HTTP body's, DIFFERENT below says how and why; anything else is a problem.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import io
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from maestro import openapi, operations
from maestro.cli import _parser
from maestro.client import Client
from proto.v1 import ApprovalDecision, Cancelled, Retrying, SetBudget

JSON = "application/json"


@dataclasses.dataclass(frozen=True)
class Different:
    """How an SDK call's type differs from its HTTP operation's, and why."""

    why: str
    body: Any = None
    """The type the SDK takes instead of the request body (None: the body's fields are keyword arguments)."""
    answer: Any = None
    """The type the SDK returns instead of the 2xx answer (None: the same)."""


DIFFERENT: dict[str, Different] = {
    "submitTask": Different(
        "the SDK returns the id it published; the HTTP receipt exists for a remote caller", answer=str
    ),
    "submitWorkflow": Different("the SDK returns the id it published, as submit() does", answer=str),
    "approveTask": Different(
        "the SDK returns the ApprovalDecision it published; Decided is the HTTP receipt of it",
        answer=ApprovalDecision,
    ),
    "rejectTask": Different("as approveTask", answer=ApprovalDecision),
    "cancelTask": Different(
        "the SDK returns the Cancelled event it recorded; CancelAccepted is the HTTP receipt of it",
        answer=Cancelled,
    ),
    "retryTask": Different(
        "the SDK returns the Retrying event it recorded; RetriedNow is the HTTP receipt of it",
        answer=Retrying,
    ),
    "setBudget": Different(
        "the HTTP body leaves the tenant to the path; the SDK takes the SetBudget the budget service takes",
        body=SetBudget,
    ),
    "pushPolicy": Different("the bundle is YAML text, given as bytes or str", body=bytes | str),
}
"""Every SDK call whose types are not the HTTP operation's, by operationId."""

UNMAPPED_PARAMS: dict[tuple[str, str], str] = {
    ("getTaskEvents", "follow"): "Client.watch() follows a task's events; Client.events() reads them",
    ("getTaskEvents", "Last-Event-ID"): "Client.watch() reads the events from the first; SSE resumes mid-way",
}
"""HTTP parameters the SDK call takes no argument for, and why."""


def schema_matches(schema: dict[str, Any], type_: Any, components: dict[str, Any]) -> bool:
    """Whether `type_` has the JSON schema the document gives `schema`, components and all."""
    refs, needed = msgspec.json.schema_components([type_], ref_template=openapi.REF)
    return refs[0] == schema and all(components.get(name) == part for name, part in needed.items())


def _names(param: dict[str, Any]) -> set[str]:
    name = param["name"].lower().replace("-", "_")
    return {name, name + "s"}


def _spread(hint: Any) -> set[str]:
    """The field names of a Struct argument: a path parameter may be one of them (SetBudget.tenant)."""
    return set(getattr(hint, "__struct_fields__", ()))


def sdk_problems(
    op_id: str, operation: dict[str, Any], components: dict[str, Any], client: type
) -> list[str]:
    """What is wrong with the SDK call of one operation of the document."""
    name = operation["x-maestro-sdk"]
    method = getattr(client, name, None)
    if method is None or not inspect.iscoroutinefunction(method):
        return [f"{op_id}: Client has no coroutine method {name}()"]
    problems: list[str] = []
    hints = typing.get_type_hints(method)
    params = {p: hints.get(p) for p in inspect.signature(method).parameters if p != "self"}
    different = DIFFERENT.get(op_id, Different(""))

    body = operation.get("requestBody", {}).get("content", {})
    if different.body is not None:
        if different.body not in params.values():
            problems.append(f"{op_id}: {name}() takes no {different.body} (DIFFERENT says it does)")
    elif JSON in body:
        schema = body[JSON]["schema"]
        if not any(schema_matches(schema, hint, components) for hint in params.values()):
            ref = schema.get("$ref", "")
            struct = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            missing = sorted(set(struct) - set(params))
            if not struct or missing:
                problems.append(f"{op_id}: {name}() takes neither the body's type nor its fields {missing}")

    taken = set(params) | {f for hint in params.values() for f in _spread(hint)}
    for param in operation.get("parameters", []):
        if (op_id, param["name"]) in UNMAPPED_PARAMS:
            continue
        if param["in"] == "path" and any(p.endswith("_" + param["name"]) for p in params):
            continue  # {id} is task_id, workflow_id, token_id
        if not _names(param) & taken:
            problems.append(
                f"{op_id}: {name}() takes no argument for the {param['in']} parameter {param['name']}"
            )

    answered = [
        answer["content"][JSON]["schema"]
        for status, answer in operation["responses"].items()
        if status.startswith("2") and JSON in answer.get("content", {})
    ]
    returns = hints.get("return")
    if different.answer is not None:
        if returns != different.answer:
            problems.append(f"{op_id}: {name}() returns {returns}, not {different.answer} (DIFFERENT)")
    elif answered and not schema_matches(answered[0], returns, components):
        problems.append(f"{op_id}: {name}() returns {returns}, not the type the document answers")
    return problems


def command_problem(op_id: str, cli: str, parser: argparse.ArgumentParser) -> str | None:
    """Why `maestro <cli> --help` does not parse, or None when it does."""
    current = parser
    for word in cli.split():
        if word.startswith("-"):
            if word not in current._option_string_actions:
                return f"{op_id}: `maestro {cli}`: {current.prog} has no option {word}"
            continue
        commands = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not commands or word not in commands[0].choices:
            return f"{op_id}: `maestro {cli}`: {current.prog} has no command {word}"
        current = commands[0].choices[word]
    out = io.StringIO()
    code: int | str | None = "no exit"
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            parser.parse_args([*cli.split(), "--help"])
        except SystemExit as exc:
            code = exc.code
    if code != 0 or "usage:" not in out.getvalue():
        return f"{op_id}: `maestro {cli} --help` exits {code}: {out.getvalue()[:200]}"
    return None


def parity_problems(
    document: dict[str, Any],
    client: type = Client,
    parser: Callable[[], argparse.ArgumentParser] = _parser,
) -> list[str]:
    """Every operation of `document` the SDK or the CLI lacks, or answers with other types."""
    components = document["components"]["schemas"]
    cli = parser()
    problems: list[str] = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            op_id = operation.get("operationId", f"{method.upper()} {path}")
            if "x-maestro-sdk" not in operation:
                if not operation.get("x-maestro-no-sdk"):
                    problems.append(
                        f"{op_id}: neither an SDK call (x-maestro-sdk) nor why not (x-maestro-no-sdk)"
                    )
                continue
            problems += sdk_problems(op_id, operation, components, client)
            if "x-maestro-cli" not in operation:
                problems.append(f"{op_id}: an SDK call but no CLI command (x-maestro-cli)")
            elif problem := command_problem(op_id, operation["x-maestro-cli"], cli):
                problems.append(problem)
    return problems


def test_every_operation_of_the_document_has_its_sdk_call_and_command_with_the_same_types() -> None:
    document = openapi.document()
    walked = [op for methods in document["paths"].values() for op in methods.values()]
    assert len(walked) == len(operations.OPERATIONS)
    assert parity_problems(document) == []


def test_every_difference_listed_is_one_the_document_has() -> None:
    ids = {op.id for op in operations.OPERATIONS if op.sdk}
    assert set(DIFFERENT) <= ids and {op_id for op_id, _ in UNMAPPED_PARAMS} <= ids


def test_the_checker_finds_a_missing_call_a_wrong_type_a_missing_command_and_a_silent_operation() -> None:
    base = operations.GET_TASK
    fakes = [
        dataclasses.replace(base, id="getNothing", path="/v1/nothing/{id}", sdk="nothing_at_all"),
        dataclasses.replace(base, id="getEventsAsTask", path="/v1/a/{id}", sdk="events"),
        dataclasses.replace(base, id="getWithoutCli", path="/v1/b/{id}", cli=None),
        dataclasses.replace(base, id="getByNoCommand", path="/v1/c/{id}", cli="fetch"),
        dataclasses.replace(base, id="getNoOption", path="/v1/d/{id}", cli="status --yaml"),
        dataclasses.replace(base, id="getSilently", path="/v1/e/{id}", sdk=None, cli=None),
        dataclasses.replace(
            operations.LIST_TASKS,
            id="listUnfiltered",
            path="/v1/f",
            sdk="waits",
            params=(operations.Param("colour", "query", str, "a filter the SDK lacks"),),
        ),
    ]

    problems = parity_problems(openapi.document(fakes))

    def about(op_id: str) -> list[str]:
        return [p for p in problems if p.startswith(op_id + ":")]

    assert about("getNothing") == ["getNothing: Client has no coroutine method nothing_at_all()"]
    assert len(about("getEventsAsTask")) == 1 and "events() returns" in about("getEventsAsTask")[0]
    assert about("getWithoutCli") == ["getWithoutCli: an SDK call but no CLI command (x-maestro-cli)"]
    assert about("getByNoCommand") == ["getByNoCommand: `maestro fetch`: maestro has no command fetch"]
    assert about("getNoOption") == [
        "getNoOption: `maestro status --yaml`: maestro status has no option --yaml"
    ]
    assert about("getSilently") == [
        "getSilently: neither an SDK call (x-maestro-sdk) nor why not (x-maestro-no-sdk)"
    ]
    unfiltered = about("listUnfiltered")
    assert "listUnfiltered: waits() takes no argument for the query parameter colour" in unfiltered
    assert len(unfiltered) == 2 and "waits() returns" in unfiltered[1], unfiltered
    assert len(problems) == 8, problems
