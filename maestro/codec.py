"""Encode and decode wire messages with one cached typed decoder per type."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

M = TypeVar("M")

_encoder = msgspec.json.Encoder()


class DecodeError(ValueError):
    """Bytes that are not a valid message of the expected type; the text says which field and why."""


def encode(message: Any) -> bytes:
    """JSON bytes for a message."""
    return _encoder.encode(message)


@functools.cache
def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(type_)


def decode(type_: type[M], data: bytes | str) -> M:
    """The message of `type_` in `data`; raises DecodeError naming the field that is wrong."""
    try:
        return _decoder(type_).decode(data)  # type: ignore[arg-type, no-any-return]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise DecodeError(str(exc)) from None
    except RecursionError:
        # msgspec refuses input nested deeper than its recursion limit, even inside a field it would skip.
        raise DecodeError("nested too deeply") from None


def decode_strict(type_: type[M], data: bytes | str) -> M:
    """decode(), refusing fields the type does not know, at any depth (docs/ARCHITECTURE.md: the public
    edges are strict, so a misspelt field is an error, never a silent no-op); raises DecodeError naming it.

    Between services the same types stay tolerant: a newer peer may send fields this one does not know.
    """
    message = decode(type_, data)
    try:
        unknown = _unknown(_type_info(type_), msgspec.json.decode(data), "$")  # type: ignore[arg-type]
    except RecursionError:  # pragma: no cover - decode() above refused anything nested this deep
        raise DecodeError("nested too deeply") from None
    if unknown is not None:
        raise DecodeError(unknown)
    return message


@functools.cache
def _type_info(type_: Any) -> inspect.Type:
    return inspect.type_info(type_)


def _unknown(info: inspect.Type, value: Any, path: str) -> str | None:
    """Where `value` (decoded JSON) holds a field `info` does not describe, in msgspec's words; or None."""
    match info:
        case inspect.StructType(fields=fields, tag_field=tag_field):
            if not isinstance(value, dict):
                return None
            known = {f.encode_name: f.type for f in fields}
            for key, item in value.items():
                if key == tag_field:
                    continue
                if key not in known:
                    where = "" if path == "$" else f" - at `{path}`"
                    return f"Object contains unknown field `{key}`{where}"
                found = _unknown(known[key], item, f"{path}.{key}")
                if found is not None:
                    return found
        case inspect.ListType(item_type=item) | inspect.VarTupleType(item_type=item):
            if isinstance(value, list):
                for n, element in enumerate(value):
                    found = _unknown(item, element, f"{path}[{n}]")
                    if found is not None:
                        return found
        case inspect.DictType(value_type=item):
            if isinstance(value, dict):
                for key, element in value.items():
                    found = _unknown(item, element, f"{path}.{key}")
                    if found is not None:
                        return found
        case inspect.Metadata(type=inner):
            return _unknown(inner, value, path)
        case inspect.UnionType(types=types):
            structs = [t for t in types if isinstance(t, inspect.StructType)]
            if len(structs) == 1:
                return _unknown(structs[0], value, path)
    return None


def top_level_strings(data: bytes, keys: frozenset[str]) -> dict[str, str]:
    """The string values of `keys` at the top level of a JSON object, read without decoding the rest.

    For a message that cannot be decoded (nested past every parser's depth, or invalid further on): its
    id and tenant can still be read, in one pass and without recursion, so its sender can be told why.
    Keys that are missing, repeated (the first counts) or not strings are left out."""
    text = data.decode("utf-8", errors="replace")
    found: dict[str, str] = {}
    depth, state, key, i, n = 0, "", "", 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                break
            if depth == 1 and state in ("key", "value"):
                try:
                    literal = msgspec.json.decode(text[i : end + 1])
                except msgspec.DecodeError:
                    literal = None
                if state == "key":
                    key, state = (literal if isinstance(literal, str) else ""), "colon"
                elif key in keys and key not in found and isinstance(literal, str):
                    found[key], state = literal, "after"
                else:
                    state = "after"
            i = end + 1
            continue
        if c in "{[":
            depth += 1
            if depth == 1:
                state = "key" if c == "{" else ""
            elif depth == 2 and state == "value":
                state = "after"
        elif c in "}]":
            depth -= 1
            if depth <= 0:
                break
        elif depth == 1 and c == ":" and state == "colon":
            state = "value"
        elif depth == 1 and c == ",":
            state = "key"
        i += 1
    return found
