"""The OpenAPI 3.1.0 document of the orchestrator's HTTP API, written from maestro/operations.py alone.

Every body and answer schema is what msgspec itself makes of the type the handler decodes or encodes
(`msgspec.json.schema_components`), so the document cannot describe a field the code does not read. JSON
Schema 2020-12 is OpenAPI 3.1's own schema language: the components go in unchanged. The output depends on
nothing but the table and the Structs (no app, no clock), so `make schema` can write it and a test can
compare it with the committed proto/schema/openapi.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from maestro.access.grants import PREFIX
from maestro.http import package_version
from maestro.operations import OPERATIONS, Answer, Operation, Param
from proto.v1.access import ALL_TENANTS, SCOPES
from proto.v1.api import ApiError

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{name}"
SECURITY_SCHEME = "bearer"
ERROR_SCHEMA = ApiError.__name__

TAGS: dict[str, str] = {
    "tasks": "Submit tasks, read their records and events, approve, reject or cancel them",
    "workflows": "Run workflows (DAGs of tasks), read them, cancel, pause or resume them",
    "admin": "Budgets, the policy bundle and API tokens: a tenant's admin, or an operator for all tenants",
    "hooks": "Webhooks other systems call, each authenticated by its own signature instead of a token",
    "humans": "Human work: the inbox of human queues' tasks; claims, completions, releases; the people",
    "gates": "Gates a pipeline asks before it acts: may this commit be deployed (a tester task proved it)",
    "policy": "What the policy guard decided over time: requests by verdict and by rule, for charts",
    "service": "The service itself: its index, probes, metrics, this document and the console",
}
"""Each tag of maestro/operations.py and what its operations are for (a tag missing here is an error)."""

HEADERS: dict[str, dict[str, Any]] = {
    "WWW-Authenticate": {
        "description": 'The bearer challenge (RFC 6750): `Bearer realm="maestro"`, with '
        '`error="invalid_token"` when the token given was refused',
        "schema": {"type": "string"},
    },
    "Allow": {
        "description": "The methods the path takes, comma-separated",
        "schema": {"type": "string"},
    },
}
"""The response headers an Answer may name, as reusable header components."""

_DESCRIPTION = f"""\
The HTTP API of Maestro's orchestrator: submit tasks and workflows, follow them, decide on those awaiting
approval, and administer budgets, the policy bundle and API tokens. The same msgspec types travel over NATS
(see the AsyncAPI document in proto/schema/asyncapi.json); the Python SDK (`maestro.client.Client`) and the
`maestro` CLI do what each operation does (`x-maestro-sdk`, `x-maestro-cli`).

**Authentication.** Every `/v1` route needs `Authorization: Bearer <token>` (but `/v1/hooks/github`, which
GitHub signs instead); `/`, `/healthz`, `/readyz`,
`/metrics`, `/openapi.json` and `/docs` are open. A token (`{PREFIX}<id>_<secret>`) is bound to one tenant (or
`{ALL_TENANTS}`, every tenant: an operator's) and holds scopes ({", ".join(f"`{s}`" for s in SCOPES)}); each
operation names the scope it needs in `x-maestro-scope`. Another tenant's task or workflow answers `404`, as
an id nobody used does.

**Errors.** Every error, whatever its status, is a JSON `ApiError`: `error` says what went wrong and, when the
request is at fault, `field` names the part (`$.role` in the body, `limit` in the query). Besides the answers
each operation lists, any path answers `404` to a path that does not exist, `405` with an `Allow` header to a
method it does not take, `413` to a body over the size limit, `503` (try again) when what it waited on was
slow, and `500` when it failed; all with an `ApiError` body."""


class OpenApiError(RuntimeError):
    """maestro/operations.py names something this module cannot document (a tag or a header it lacks)."""


def _body_types(operations: Iterable[Operation]) -> list[Any]:
    """Every type a body or an answer has, each once, in the order the table names them."""
    found: list[Any] = []
    for operation in operations:
        for type_ in (operation.body, *(answer.body for answer in operation.answers)):
            if type_ is not None and type_ not in found:
                found.append(type_)
    return found


def _parameter(param: Param) -> dict[str, Any]:
    schema = msgspec.json.schema(param.type)
    out: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "description": param.description,
        "required": param.required,
    }
    if param.repeated:
        out |= {"schema": {"type": "array", "items": schema}, "style": "form", "explode": True}
    else:
        out["schema"] = schema
    return out


def _access(operation: Operation) -> str:
    if operation.any_token:
        return "Needs a valid token, whatever its scopes."
    if operation.scope is None:
        return "Open: no token needed."
    if operation.operator:
        return (
            f"Needs an operator's token (tenant `{ALL_TENANTS}`, scope `{operation.scope}`): operator only."
        )
    return f"Needs a token with scope `{operation.scope}` in the tenant the call touches."


def _security(operation: Operation) -> list[dict[str, list[str]]]:
    if operation.any_token:
        return [{SECURITY_SCHEME: []}]
    return [{SECURITY_SCHEME: [operation.scope]}] if operation.scope is not None else []


def _parity(operation: Operation) -> str:
    if operation.sdk is None:
        return f"No SDK call or CLI command: {operation.no_sdk}."
    cli = f"; CLI: `maestro {operation.cli}`" if operation.cli else ""
    return f"SDK: `Client.{operation.sdk}`{cli}."


def _request_body(operation: Operation, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schemas[operation.body]}
    if operation.examples:
        media["examples"] = {name: {"value": value} for name, value in sorted(operation.examples.items())}
    return {"required": operation.body_required, "content": {operation.body_media: media}}


def _responses(answers: Iterable[Answer], schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    by_status: dict[int, list[Answer]] = {}
    for answer in answers:
        by_status.setdefault(answer.status, []).append(answer)
    out: dict[str, Any] = {}
    for status, group in sorted(by_status.items()):
        if len(group) == 1:
            description = group[0].description
        else:
            description = "; or ".join(f"{a.description} ({a.media})" for a in group)
        response: dict[str, Any] = {"description": description}
        content = {a.media: {"schema": schemas[a.body]} for a in group if a.body is not None}
        if content:
            response["content"] = dict(sorted(content.items()))
        named = sorted({header for a in group for header in a.headers})
        unknown = [header for header in named if header not in HEADERS]
        if unknown:
            raise OpenApiError(f"no description of the response headers {unknown}: add them to HEADERS")
        if named:
            response["headers"] = {h: {"$ref": f"#/components/headers/{h}"} for h in named}
        out[str(status)] = response
    return out


def _operation(operation: Operation, schemas: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if operation.tag not in TAGS:
        raise OpenApiError(f"tag {operation.tag!r} of {operation.id} has no description: add it to TAGS")
    text = "\n\n".join(p for p in (operation.description, _access(operation), _parity(operation)) if p)
    out: dict[str, Any] = {
        "operationId": operation.id,
        "summary": operation.summary,
        "description": text,
        "tags": [operation.tag],
        "security": _security(operation),
    }
    if operation.params:
        out["parameters"] = [_parameter(p) for p in operation.params]
    if operation.body is not None:
        out["requestBody"] = _request_body(operation, schemas)
    out["responses"] = _responses(operation.answers, schemas)
    if operation.scope is not None:
        out["x-maestro-scope"] = operation.scope
    if operation.operator:
        out["x-maestro-operator"] = True
    if operation.sdk is not None:
        out["x-maestro-sdk"] = operation.sdk
    if operation.cli is not None:
        out["x-maestro-cli"] = operation.cli
    if operation.no_sdk is not None:
        out["x-maestro-no-sdk"] = operation.no_sdk
    return out


def document(operations: Iterable[Operation] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of `operations` (every route of the orchestrator's API by default);
    raises OpenApiError when an operation names a tag or a response header this module does not describe."""
    operations = tuple(operations)
    types = _body_types(operations)
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    schemas = dict(zip(types, refs, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, schemas)

    used_tags = list(dict.fromkeys(operation.tag for operation in operations))
    scopes = ", ".join(f"`{s}`" for s in SCOPES)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Maestro API",
            "version": package_version(),
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [
            {"url": "/", "description": "the orchestrator serving this document (`maestro up`: port 8080)"}
        ],
        "tags": [{"name": tag, "description": TAGS[tag]} for tag in used_tags],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "headers": dict(sorted(HEADERS.items())),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": f"{PREFIX}<id>_<secret>",
                    "description": f"An API token, `{PREFIX}<id>_<secret>` (`maestro token create`, or the "
                    f"operator's token `maestro up` writes to .maestro/api.token). It acts in one tenant "
                    f"(`{ALL_TENANTS}`: every one) with scopes among {scopes}; an operation's security "
                    "requirement names the scope it needs.",
                }
            },
        },
    }
