"""What the API reads from requests: a task id in the path, only the query parameters a route takes, who acts
and why, and which field a body's decode error is about."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from msgspec import inspect

from maestro import codec
from maestro.http import error, limited_body
from maestro.since import parse_since
from proto.v1.api import ActionBody
from proto.v1.ids import TENANT_PATTERN, TOKEN_PATTERN

T = TypeVar("T")
_TASK_ID = re.compile(TOKEN_PATTERN)

# msgspec names the path of a bad value ("... - at `$.context[0]`") and a missing field by name.
_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]+)`")
_STEP = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")
_WHOLE_FLOAT = re.compile(r"Expected `int\b[^`]*`, got `float`")
_EXACT = 2**53
"""Past this, a float no longer spells every integer: 1e300 is no integer a client meant."""


def field_of(type_: Any, message: str) -> str:
    """The JSON path a decode error of `type_` is about (`$.role`), or `$` when it is about the whole body.

    msgspec points a rule checked on a whole struct (its __post_init__) at the struct; when the message
    begins by naming one of the struct's fields ("data_region 'mars' is ...", "context path '/x' is ..."),
    the path goes on to that field.
    """
    at = _AT_PATH.search(message)
    path = at.group(1) if at else "$"
    missing = _NAMED.search(message)
    if missing:
        return f"{path}.{missing.group(1)}"
    struct = _struct_at(inspect.type_info(type_), path)
    if isinstance(struct, inspect.StructType):
        names = {f.encode_name for f in struct.fields}
        leading = [word.strip("`'\"") for word in message.split()[:2]]
        named = [word for word in leading if word in names]
        if len(named) == 1:
            return f"{path}.{named[0]}"
    return path


def _struct_at(info: inspect.Type, path: str) -> inspect.Type | None:
    """The type a JSON path (`$.context[0]`, `$.labels[...]`) leads to in `info`; None if it leads nowhere."""
    for name, _index in _STEP.findall(path[1:]):
        while isinstance(info, inspect.Metadata):
            info = info.type
        if isinstance(info, inspect.UnionType):
            inner = [t for t in info.types if not isinstance(t, inspect.NoneType)]
            if len(inner) != 1:
                return None
            info = inner[0]
        match info:
            case inspect.StructType(fields=fields) if name:
                found = [f.type for f in fields if f.encode_name == name]
                if not found:
                    return None
                info = found[0]
            case inspect.ListType(item_type=item) | inspect.VarTupleType(item_type=item) if not name:
                info = item
            case inspect.DictType(value_type=value) if not name:
                info = value
            case _:
                return None
    while isinstance(info, inspect.Metadata):
        info = info.type
    return info


async def body_of(
    request: web.Request,
    type_: type[T],
    what: str,
    limit: int,
    place: Callable[[str], str] | None = None,
) -> T | web.Response:
    """The request's body decoded strictly as `type_`, or the JSON answer to give instead: 413 past `limit`
    bytes, 400 naming the field at fault (`place` finds it in the error's text; default: field_of)."""
    body = await limited_body(request, limit)
    if isinstance(body, web.Response):
        return body
    try:
        return _decoded(type_, body)
    except codec.DecodeError as exc:
        field = place(str(exc)) if place is not None else field_of(type_, str(exc))
        return error(400, f"invalid {what}: {exc}", field=field)


def _decoded(type_: type[T], body: bytes) -> T:
    """codec.decode_strict, taking a whole number written with a fraction (5.0) as the integer it equals:
    JSON, and the JSON Schema the API's document gives, do not tell them apart, while msgspec refuses a
    float where it wants an int. Raises codec.DecodeError."""
    try:
        return codec.decode_strict(type_, body)
    except codec.DecodeError as exc:
        if not _WHOLE_FLOAT.search(str(exc)):
            raise
        try:
            whole = _whole_numbers(msgspec.json.decode(body))
        except RecursionError:  # too deep to walk here (some hundred levels): the first error stands
            raise exc from None
        return codec.decode_strict(type_, msgspec.json.encode(whole))


def _whole_numbers(value: Any) -> Any:
    """`value` (decoded JSON) with each float that is a whole number, exactly, made an int."""
    match value:
        case float() if value.is_integer() and abs(value) <= _EXACT:
            return int(value)
        case dict():
            return {key: _whole_numbers(item) for key, item in value.items()}
        case list():
            return [_whole_numbers(item) for item in value]
    return value


async def actor_of(request: web.Request, what: str, limit: int) -> ActionBody | web.Response:
    """The request's ActionBody (an empty body is an empty one), or the JSON answer to give instead: 413
    past `limit` bytes, as for every body, or 400 naming what is wrong."""
    raw = await limited_body(request, limit)
    if isinstance(raw, web.Response):
        return raw
    try:
        return _decoded(ActionBody, raw) if raw.strip() else ActionBody()
    except codec.DecodeError as exc:
        return error(400, f"invalid {what}: {exc}", field=field_of(ActionBody, str(exc)))


def task_id_of(request: web.Request) -> str | web.Response:
    """The task id in the path, or the 400 to answer for one that cannot be a task id."""
    task_id = request.match_info["id"]
    if not _TASK_ID.match(task_id):
        return error(400, f"not a valid task id (expected {TOKEN_PATTERN})", field="id")
    return task_id


_TENANT = re.compile(TENANT_PATTERN)


def tenant_of(text: str, where: str) -> str | web.Response:
    """`text` when it is a tenant's name, else the 400 to answer, naming `where` it was given."""
    if not _TENANT.match(text):
        return error(400, f"not a tenant name (expected {TENANT_PATTERN}): {text[:64]!r}", field=where)
    return text


def since_of(request: web.Request, now: datetime) -> datetime | web.Response:
    """The start of the range the request's `since` asks for (maestro/since.py: the last 24 h without one,
    7 days back at most), or the 400 to answer."""
    try:
        return parse_since(request.query.get("since"), now)
    except ValueError as exc:
        return error(400, str(exc), field="since")


def only(request: web.Request, allowed: Iterable[str]) -> web.Response | None:
    """400 for a query parameter the route does not take: a misspelt one must not be ignored (`?tenat=`
    would push the whole bundle instead of one tenant's override)."""
    known = set(allowed)
    unknown = sorted(set(request.query) - known)
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        return error(
            400, f"unknown query parameter {unknown[0]!r} (this route takes: {takes})", field=unknown[0]
        )
    return None
