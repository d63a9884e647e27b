"""Access to the API: what a bearer token grants, as the orchestrator keeps it (never the secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import END, TENANT_PATTERN

Scope = Literal["submit", "read", "approve", "admin"]
"""What a token may do in its tenant: `submit` tasks and workflows (and cancel, pause or resume them), `read`
records and events, `approve` or reject parked tasks; `admin` may do all of these and manage the tenant's
tokens, and, bound to every tenant, set budgets and push the policy bundle."""

SCOPES: tuple[Scope, ...] = ("submit", "read", "approve", "admin")
ALL_TENANTS = "*"
"""The tenant of an operator's token: every tenant."""

TokenId = Annotated[str, Meta(pattern=r"^[0-9a-f]{16}" + END, description="a token's public id")]
GrantTenant = Annotated[
    str,
    Meta(pattern=f"(?:{TENANT_PATTERN})|^\\*{END}", description="the tenant a token acts in, or * for all"),
]
Subject = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern=r"^[^\s\x00-\x1f\x7f]+" + END,
        description="who holds the token (a person or a service): recorded as `by` of what it does",
    ),
]


class TokenGrant(Message, frozen=True):
    """One API token: what it grants and to whom, and the SHA-256 (hex) of its secret. Deleted: revoked."""

    id: TokenId
    tenant: GrantTenant
    scopes: tuple[Scope, ...]
    subject: Subject
    digest: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}" + END)]
    created_at: datetime
    created_by: Annotated[str, Meta(max_length=128)] = ""
    expires_at: datetime | None = None
    """After this the token is refused; None: it lasts until revoked."""
