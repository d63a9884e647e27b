"""The base of every wire message."""

from __future__ import annotations

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A wire message: immutable, keyword-only, defaults left off the wire so fields can be added."""
