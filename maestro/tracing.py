"""W3C trace context: where a trace starts (a submit without one) and the id log lines carry."""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def new_traceparent() -> str:
    """A fresh, sampled traceparent: version 00, a random trace id and parent span id."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id inside a traceparent header, or None when there is none or it is malformed."""
    if not traceparent:
        return None
    found = _TRACEPARENT.match(traceparent)
    return found.group(1) if found else None
