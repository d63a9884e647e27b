"""Value rules shared by every v1 message: ids, tenants, money, tokens."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Literal

from msgspec import Meta

# Python's `$` (msgspec's and the API's regexes) also matches before a final newline: every pattern ends
# with this instead, which JSON Schema's regexes read the same way.
END = r"(?!\n)$"
# A token is safe as a NATS subject token and as a KV key: no dots, wildcards or spaces.
TOKEN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}" + END

TaskId = Annotated[str, Meta(pattern=TOKEN_PATTERN, description="task id, also the idempotency key")]
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}" + END
Tenant = Annotated[str, Meta(pattern=TENANT_PATTERN, description="tenant name (lowercase, subject-safe)")]
# Bounds on every amount on the wire: far above any real budget or call, far below int64, so a sum or a
# price times a count of them stays exact in every language that reads these messages.
MAX_MICRO_USD = 10**15
"""One billion USD."""
MAX_TOKENS = 10**12
"""A trillion tokens."""
MicroUsd = Annotated[
    int, Meta(ge=0, le=MAX_MICRO_USD, description="money in integer micro-USD (1 USD = 1_000_000)")
]
Tokens = Annotated[int, Meta(ge=0, le=MAX_TOKENS, description="a count of model tokens")]
# A model's id as providers spell it: `gpt-4o`, `meta-llama/Llama-3.1-8B`, `eu.anthropic.claude-v2:1`.
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}" + END
ModelName = Annotated[str, Meta(pattern=MODEL_PATTERN, description="a model id (at most 128 characters)")]

PRIORITIES = range(10)
"""Every priority a task may have, lowest first."""
DEFAULT_PRIORITY = 5
Priority = Annotated[
    int,
    Meta(
        ge=PRIORITIES[0],
        le=PRIORITIES[-1],
        description="0 (lowest) to 9 (highest): within a role, higher priority runs first; default 5",
    ),
]

Role = Literal["planner", "scaffolder", "implementer", "tester", "reviewer", "doc-writer"]
ROLES: tuple[Role, ...] = ("planner", "scaffolder", "implementer", "tester", "reviewer", "doc-writer")


def new_task_id() -> str:
    """A fresh task id: time-ordered (ms, hex) then 64 random bits, so ids sort roughly by creation."""
    return f"t{time.time_ns() // 1_000_000:011x}{secrets.token_hex(8)}"
