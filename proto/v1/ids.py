"""Value rules shared by every v1 message: ids, tenants, money, tokens."""

from __future__ import annotations

import re
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

AgentRole = Literal["planner", "scaffolder", "implementer", "tester", "reviewer", "doc-writer"]
ROLES: tuple[AgentRole, ...] = ("planner", "scaffolder", "implementer", "tester", "reviewer", "doc-writer")
"""The agents' roles: every role but the human queues."""
HUMAN_PREFIX = "human:"
QUEUE_PATTERN = r"^[a-z][a-z0-9_]{0,31}" + END
"""A human queue's name (`security`, `ops`): its role is `human:<name>`."""
ROLE_PATTERN = (
    r"^(?:planner|scaffolder|implementer|tester|reviewer|doc-writer|human:[a-z][a-z0-9_]{0,31})" + END
)
# Checked in __post_init__ of the messages that take a role from outside (role_problem: a message that says
# what a role may be); the pattern is for schema readers.
Role = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        description="an agent role (planner, scaffolder, implementer, tester, reviewer, doc-writer), or a "
        "human queue: `human:<queue>` (`human:security`), whose tasks people claim and answer",
        extra_json_schema={"pattern": ROLE_PATTERN},
    ),
]
_ROLE = re.compile(ROLE_PATTERN)
_AGENT_ROLES = frozenset(ROLES)


def role_problem(role: str) -> str | None:
    """Why `role` names no role, or None."""
    if role in _AGENT_ROLES or _ROLE.match(role):  # every request is checked: the set answers most at once
        return None
    if role.startswith(HUMAN_PREFIX):
        return f"role {role[:64]!r}: a human queue is `human:` then lowercase letters, digits and `_`"
    return (
        f"role {role[:64]!r} is neither an agent role ({', '.join(ROLES)}) nor a human queue (human:<queue>)"
    )


QueueName = Annotated[str, Meta(pattern=QUEUE_PATTERN, description="a human queue's name (`security`)")]


def is_human(role: str) -> bool:
    """Whether `role` is a human queue (`human:<queue>`), whose tasks people do, not agents."""
    return role.startswith(HUMAN_PREFIX)


def queue_of(role: str) -> str:
    """The queue a human role names (`human:security` -> `security`)."""
    return role.removeprefix(HUMAN_PREFIX)


def new_task_id() -> str:
    """A fresh task id: time-ordered (ms, hex) then 64 random bits, so ids sort roughly by creation."""
    return f"t{time.time_ns() // 1_000_000:011x}{secrets.token_hex(8)}"
