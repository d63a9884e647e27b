"""API tokens, pure: minting one, reading one a caller presents, and what its grant allows.

A token is `mst_<id>_<secret>`: the id (16 hex digits) names its grant in the token bucket, the secret (43
URL-safe characters, 256 random bits) proves it. Only the secret's SHA-256 is kept: a secret this random needs
no slow hash, and the bucket read alone gives no one a token. The digest is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from proto.v1.access import ALL_TENANTS, SCOPES, Scope, TokenGrant

PREFIX = "mst_"
_TOKEN = re.compile(r"^mst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class BadToken(ValueError):
    """A token that does not open anything: malformed, unknown, revoked, wrong or expired. The text says
    which, for the log; the caller hears only that the token is not valid."""


@dataclass(frozen=True)
class Minted:
    """A new token: the secret string, shown once, and the grant to store."""

    token: str
    grant: TokenGrant


def digest(secret: str) -> str:
    """The hex SHA-256 of a token's secret, as the grant keeps it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def mint(
    *,
    tenant: str,
    scopes: Iterable[Scope],
    subject: str,
    now: datetime,
    created_by: str = "",
    expires_at: datetime | None = None,
) -> Minted:
    """A new token and its grant (checked as the wire checks it: raises ValueError on a bad field)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    chosen = set(scopes)
    if not chosen:
        raise ValueError("a token needs at least one scope")
    if expires_at is not None and expires_at <= now:
        raise ValueError("a token cannot expire before it is made")
    grant = TokenGrant(
        id=token_id,
        tenant=tenant,
        scopes=tuple(s for s in SCOPES if s in chosen),
        subject=subject,
        digest=digest(secret),
        created_at=now,
        created_by=created_by,
        expires_at=expires_at,
    )
    try:
        msgspec.convert(msgspec.to_builtins(grant), TokenGrant)  # as a reader of the bucket will check it
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    return Minted(f"{PREFIX}{token_id}_{secret}", grant)


def token_id(token: str) -> str:
    """The id of the grant a presented token names; raises BadToken when it is not a token's shape."""
    match = _TOKEN.match(token)
    if match is None:
        raise BadToken("not a Maestro token")
    return match.group(1)


def check(token: str, grant: TokenGrant | None, now: datetime) -> TokenGrant:
    """The grant a presented token opens at `now`; raises BadToken when it opens none."""
    match = _TOKEN.match(token)
    if match is None:
        raise BadToken("not a Maestro token")
    if grant is None:
        raise BadToken(f"token {match.group(1)} is unknown or revoked")
    if not hmac.compare_digest(digest(match.group(2)).encode(), grant.digest.encode()):
        raise BadToken(f"token {grant.id}: wrong secret")
    if grant.expires_at is not None and now >= grant.expires_at:
        raise BadToken(f"token {grant.id} expired at {grant.expires_at.isoformat()}")
    return grant


@dataclass(frozen=True)
class Caller:
    """Who calls the API and what they may do: from a token's grant, or everything when auth is off."""

    subject: str
    tenant: str
    """The tenant the caller acts in, or ALL_TENANTS."""
    scopes: frozenset[Scope]
    token_id: str | None = None

    @classmethod
    def of(cls, grant: TokenGrant) -> Caller:
        """The caller a grant makes."""
        return cls(grant.subject, grant.tenant, frozenset(grant.scopes), grant.id)

    @classmethod
    def anyone(cls) -> Caller:
        """The caller of an API without auth (MAESTRO_AUTH=off): may do everything, names itself."""
        return cls("api", ALL_TENANTS, frozenset(SCOPES))

    @property
    def authenticated(self) -> bool:
        """Whether a token says who this is (else `by` is whatever the caller claims)."""
        return self.token_id is not None

    def sees(self, tenant: str) -> bool:
        """Whether the caller acts in `tenant` at all: another tenant's things do not exist for it."""
        return self.tenant in (ALL_TENANTS, tenant)

    def may(self, scope: Scope, tenant: str) -> bool:
        """Whether the caller may do what `scope` covers in `tenant` (admin covers every scope)."""
        return self.sees(tenant) and (scope in self.scopes or "admin" in self.scopes)

    @property
    def operator(self) -> bool:
        """Whether the caller administers every tenant: may set budgets and push the policy bundle."""
        return self.tenant == ALL_TENANTS and "admin" in self.scopes
