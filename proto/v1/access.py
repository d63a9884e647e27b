"""Access to the API: what a bearer token grants, as the orchestrator keeps it (never the secret)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import END, TENANT_PATTERN

Scope = Literal["submit", "read", "approve", "work", "admin"]
"""What a token may do in its tenant: `submit` tasks and workflows (and cancel, pause or resume them), `read`
records and events, `approve` or reject parked tasks, `work` on human queues' tasks (claim, complete,
release: as the token's subject, a person with the queue among their skills); `admin` may do all of these
and manage the tenant's tokens, and, bound to every tenant, set budgets and push the policy bundle."""

SCOPES: tuple[Scope, ...] = ("submit", "read", "approve", "work", "admin")
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


class TokenView(Message, frozen=True):
    """An API token as those who administer it see it: what it grants and to whom, never its secret's digest
    (GET /v1/tokens, the answer to POST /v1/tokens and to DELETE /v1/tokens/{id})."""

    id: TokenId
    tenant: GrantTenant
    scopes: tuple[Scope, ...]
    subject: Subject
    created_at: datetime
    created_by: Annotated[str, Meta(max_length=128)] = ""
    expires_at: datetime | None = None
    """After this the token is refused; None: it lasts until revoked."""


class TokenGrant(TokenView, frozen=True, kw_only=True):
    """One API token as the bucket keeps it: its view and its secret's SHA-256 (hex). Deleted: revoked."""

    digest: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}" + END)]

    def view(self) -> TokenView:
        """The grant without its digest: what an answer may show."""
        return TokenView(**{name: getattr(self, name) for name in TokenView.__struct_fields__})


class TokenRequest(Message, frozen=True):
    """The body of POST /v1/tokens: a token to make. An operator may make any; a tenant's admin only tokens
    of its own tenant."""

    tenant: GrantTenant
    scopes: Annotated[tuple[Scope, ...], Meta(min_length=1)]
    subject: Subject | None = None
    """Who will hold it, recorded as `by` of what it does; None: the caller's own subject."""
    expires_at: Annotated[datetime, Meta(tz=True)] | None = None
    """When it stops working (a time with its offset); None: it lasts until revoked."""


class IssuedToken(Message, frozen=True):
    """The answer to POST /v1/tokens: the token, shown this once (only its digest is kept), and its grant."""

    token: str
    grant: TokenView
