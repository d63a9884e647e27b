"""The HTTP API as a contract: Schemathesis against a running orchestrator, from the OpenAPI document.

`schemathesis run` (its CLI, the interface its authors keep stable) runs in a process of its own, so that
generating inputs never competes with the mesh under test for this process's interpreter, on the document
maestro/openapi.py writes from maestro/operations.py. Every documented operation gets schema-valid and
schema-violating inputs (its examples, the coverage phase's boundary and type cases, then random ones, then
sequences of calls along the links it infers), as the token of an operator, and every check Schemathesis
has looks at every answer (CHECKS says why each is on). `tests/e2e/test_api_contract.py` runs a short
deterministic campaign in `make test`; the `api-contract` chaos scenario a long random one.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maestro import listing, openapi
from maestro.operations import EVENT_STREAM, JSON, OPERATIONS, YAML

CHECKS: Mapping[str, str] = {
    "not_a_server_error": "no answer is a 5xx, whatever the input",
    "status_code_conformance": "every status is one the operation documents",
    "content_type_conformance": "every answer's Content-Type is one its status documents",
    "response_schema_conformance": "every body (each event of a followed stream too) matches its schema",
    "response_headers_conformance": "a documented header (WWW-Authenticate on a 401) is there and valid",
    "negative_data_rejection": "a schema-violating request (an unknown field included) is a 4xx",
    "positive_data_acceptance": "a schema-valid request is accepted (ACCEPTED_400 lists the exceptions)",
    "missing_required_header": "a request without a required header is refused",
    "unsupported_method": "a method a path does not take is a 405, not a 404 or a 200",
    "allow_header_conformance": "a 405 names the methods the path takes in Allow",
    "use_after_free": "a revoked token, once revoked, is gone (the stateful phase)",
    "ensure_resource_availability": "what a POST made can be read at once (the stateful phase)",
    "ignored_auth": "every guarded operation refuses a request with no token, or a wrong one (401)",
    "object_level_authorization": "one identity cannot read what another made (needs two identities: "
    "tests/e2e/test_api_access.py proves it per route with two tenants' tokens)",
}
"""Every check Schemathesis 4 has, all on (its default), and what each proves here. `max_response_time` is
off: a loaded two-core machine answers slowly now and then, which says nothing about the contract."""

_LISTING_400 = (
    "a cursor is opaque (only one this API gave out is one); `since` is a time with its zone or a span"
)
ACCEPTED_400: Mapping[str, str] = {
    "submitTask": "the model must be one this deployment serves",
    "submitWorkflow": "a DAG's rules: a step needs steps that exist, and no cycle",
    "setBudget": "rules across fields: a role's or a model's sub-limit names it",
    "pushPolicy": "a bundle's own rules, listed in `problems`",
    "createToken": "an expiry in the past",
    "listTasks": _LISTING_400,
    "listWorkflows": _LISTING_400,
    "deployGate": "an operator's token must name the tenant, which a tenant's token may leave out",
    "putPerson": "the body's id is the path's, and a time zone is one the IANA database names",
    "completeTask": "an answer must fit its task's form, which only the task says",
    "getPolicyDecisions": "`since` lies within the last 7 days, and `step` cuts the window into at most 2000 "
    "points",
    "followEvents": "`task` names tasks of one tenant: an operator's token gives `tenant` too",
    "getBudgetHistory": "`since` is an ISO 8601 time with its zone or a span ago, within the last 7 days",
    # Known gap: rejectTask's body is ActionBody, whose `reason` may be blank; a rejection needs one (400).
    # maestro/operations.py should give it a body type whose reason is required and not blank.
    "rejectTask": "a rejection needs a reason (known gap: the table does not say so yet)",
}
"""Schema-valid requests the API rightly refuses with a 400, by operation: rules no JSON Schema states."""

FAIL_ON = (
    "missing_auth",
    "unused_openapi_auth",
    "unresolvable_reference",
    "unsupported_regex",
    "missing_deserializer",
)
"""Schemathesis's warnings that fail a campaign: each means that part of it tested nothing (every answer a
401, a schema or pattern it could not read, a body it could not parse). Not `missing_test_data`: most
generated ids name no task, and a 404 is the right answer to them; nor `validation_mismatch`: the
operations of ACCEPTED_400 refuse most random inputs by rules no schema states (a random DAG has a cycle)."""

TOKEN_ENV = "CONTRACT_TOKEN"
"""The environment variable the campaign's token travels in (never on a command line)."""
KEEP_TOKEN_ENV = "CONTRACT_KEEP_TOKEN_ID"
"""The environment variable naming that token's id, which chaos/contract_hooks.py keeps from revocation."""
_STATUSES = ("2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx")
_REFUSALS = ("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx")
"""What rejects a schema-violating request: Schemathesis's list, and 413, the answer to a body past the
request size limit, which an oversized field (a human task's answer of a million characters) may make."""
_SSE_OPERATIONS = ("getTaskEvents", "followEvents")
"""Operations whose answer may be a stream that does not end: each call is cut after a while."""


def config(followed_stream_s: float) -> str:
    """The Schemathesis configuration (TOML) of a campaign; a followed stream is read for at most
    `followed_stream_s` (a task that never ends streams forever)."""
    # The token by the document's own security scheme, so that Schemathesis knows which operations need it.
    lines = [f"[auth.openapi.{openapi.SECURITY_SCHEME}]", f'bearer = "${{{TOKEN_ENV}}}"', ""]
    lines += ["[warnings]", f"fail-on = {json.dumps(list(FAIL_ON))}", ""]
    lines += ["[checks]", *(f"{name}.enabled = true" for name in CHECKS)]
    lines.append(f"negative_data_rejection.expected-statuses = {json.dumps(list(_REFUSALS))}")
    lines.append("")
    # One table per operation: what it may also answer, and how long a stream of its is read.
    settings: dict[str, list[str]] = {}
    for operation_id in ACCEPTED_400:
        statuses = json.dumps(list(_STATUSES))
        settings.setdefault(operation_id, []).append(
            f"checks.positive_data_acceptance.expected-statuses = {statuses}"
        )
    for operation_id in _SSE_OPERATIONS:
        settings.setdefault(operation_id, []).append(f"request-timeout = {followed_stream_s}")
    for operation_id, chosen in settings.items():
        lines += ["[[operations]]", f'include-operation-id = "{operation_id}"', *chosen, ""]
    return "\n".join(lines)


Document = dict[str, Any]


def _states(doc: Document) -> None:
    """`state` of GET /v1/tasks and /v1/workflows is one of the kind's states, or several comma-separated."""
    for path, kind in (("/v1/tasks", listing.TASKS), ("/v1/workflows", listing.WORKFLOWS)):
        one = "(?:" + "|".join(sorted(kind.states)) + ")"
        for param in doc["paths"][path]["get"]["parameters"]:
            if param["name"] == "state":
                param["schema"]["items"] = {"type": "string", "pattern": f"^{one}(?:,{one})*$"}


def _bundle(doc: Document) -> None:
    """A pushed bundle is a YAML mapping (the schema of YAML is of the document it holds), not a string."""
    doc["paths"]["/v1/policy"]["put"]["requestBody"]["content"][YAML]["schema"] = {"type": "object"}


def _event_stream(doc: Document) -> None:
    """Before OpenAPI 3.2's itemSchema, a text/event-stream schema describes one event: its id (a stream
    sequence), its kind, and its data, a TaskEvent in JSON."""
    content = doc["paths"]["/v1/tasks/{id}/events"]["get"]["responses"]["200"]["content"]
    event = copy.deepcopy(content[JSON]["schema"]["items"])
    content[EVENT_STREAM]["schema"] = {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {"type": "string", "contentMediaType": JSON, "contentSchema": event},
        },
    }


def _closed_bodies(doc: Document) -> None:
    """The public edges are strict (docs/ARCHITECTURE.md): a field a request body's type does not know is a
    400 naming it, at any depth, so every object a request body holds has `additionalProperties: false`."""
    schemas = doc["components"]["schemas"]
    bodies = [
        op["requestBody"] for path in doc["paths"].values() for op in path.values() if "requestBody" in op
    ]
    for name in _reached(schemas, bodies):
        if schemas[name].get("type") == "object":
            schemas[name]["additionalProperties"] = False


KNOWN_GAPS: tuple[Callable[[Document], None], ...] = (
    _states,
    _bundle,
    _event_stream,
    _closed_bodies,
)
"""Answers the code rightly gives that maestro/operations.py (or maestro/openapi.py) does not describe yet,
each filled into the campaign's document; a patch goes once the table says what it does."""


def document() -> Document:
    """The OpenAPI document the campaign runs on: maestro/openapi.py's, with the KNOWN_GAPS filled in."""
    doc = copy.deepcopy(openapi.document())
    for fill in KNOWN_GAPS:
        fill(doc)
    return doc


def _reached(schemas: Mapping[str, Any], roots: list[Any]) -> set[str]:
    """The names of the component schemas `roots` refer to, directly or through others."""
    found: set[str] = set()
    pending = list(roots)
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


@dataclass(frozen=True)
class Campaign:
    """How long and how wide a campaign is."""

    examples: int
    """Most inputs per operation and phase (Schemathesis's max-examples)."""
    seed: int | None = None
    """None: deterministic (the same inputs every run); else a random run reproducible by its seed."""
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful")
    request_timeout_s: float = 10.0
    followed_stream_s: float = 3.0
    workers: int = 1
    max_time_s: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What a campaign found: Schemathesis's exit code, its JSON run report and its printed report."""

    exit_code: int
    report: dict[str, Any]
    output: str

    @property
    def untested(self) -> list[str]:
        """Why some operations were not tested, when some were not."""
        operations = self.report.get("operations", {})
        if operations.get("tested") == len(OPERATIONS) and not operations.get("errored"):
            return []
        return [f"{operations}"]

    @property
    def clean(self) -> bool:
        """Whether every operation was tested and nothing was found."""
        return (
            self.exit_code == 0
            and not self.report.get("failures")
            and not self.report.get("errors")
            and not self.untested
        )

    def findings(self) -> list[str]:
        """Each kind of failure and error found, with the operations it was found on."""
        found = [
            f"{f.get('code')} {f.get('title')} x{f.get('count')}: {', '.join(f.get('operations', ()))}"
            for f in self.report.get("failures", ())
        ]
        found += [f"error: {e}" for e in self.report.get("errors", ())]
        found += [f"untested: {why}" for why in self.untested]
        if self.exit_code != 0 and not found:
            found.append(f"schemathesis exited {self.exit_code}: {self.output.strip()[-500:]}")
        return found

    def summary(self) -> str:
        """One line: cases, failures, operations, seconds."""
        cases = self.report.get("test_cases", {})
        return (
            f"{cases.get('generated', 0)} cases, {len(self.report.get('failures', ()))} failures, "
            f"{self.report.get('operations', {}).get('tested', 0)}/{len(OPERATIONS)} operations, "
            f"{self.report.get('running_time', 0):.0f}s"
        )


def command(api_url: str, campaign: Campaign, workdir: Path) -> list[str]:
    """The `schemathesis run` command line of `campaign` (the token travels in the environment)."""
    argv = [
        str(Path(sys.executable).parent / "schemathesis"),
        f"--config-file={workdir / 'schemathesis.toml'}",
        "--no-color",
        "run",
        str(workdir / "openapi.json"),
        f"--url={api_url}",
        f"--max-examples={campaign.examples}",
        f"--phases={','.join(campaign.phases)}",
        f"--request-timeout={campaign.request_timeout_s}",
        f"--workers={campaign.workers}",
        "--report=json",
        f"--report-json-path={workdir / 'report.json'}",
    ]
    if campaign.seed is None:
        argv.append("--generation-deterministic")
    else:
        argv += [f"--seed={campaign.seed}", "--generation-database=none"]
    if campaign.max_time_s is not None:
        argv.append(f"--max-time={campaign.max_time_s}")
    return argv


def _prepare(campaign: Campaign, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "openapi.json").write_text(json.dumps(document()))
    (workdir / "schemathesis.toml").write_text(config(campaign.followed_stream_s))


def _report(workdir: Path, output: str) -> dict[str, Any]:
    (workdir / "output.txt").write_text(output)
    path = workdir / "report.json"
    return json.loads(path.read_text()) if path.exists() else {}


async def run(api_url: str, token: str, campaign: Campaign, workdir: Path) -> Outcome:
    """Run `campaign` against the API at `api_url` with an operator's `token`, in `workdir` (where
    Schemathesis keeps its files, its JSON report, report.json, and what it printed, output.txt)."""
    await asyncio.to_thread(_prepare, campaign, workdir)
    env = {
        **os.environ,
        TOKEN_ENV: token,
        KEEP_TOKEN_ENV: token.split("_")[1],
        "SCHEMATHESIS_HOOKS": "chaos.contract_hooks",
    }
    proc = await asyncio.create_subprocess_exec(
        *command(api_url, campaign, workdir),
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    output = out.decode(errors="replace")
    report = await asyncio.to_thread(_report, workdir, output)
    return Outcome(proc.returncode if proc.returncode is not None else -1, report, output)
