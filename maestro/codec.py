"""Encode and decode wire messages with one cached typed decoder per type."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import msgspec

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
