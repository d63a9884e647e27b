"""The API's tokens in the `maestro_tokens` bucket: one grant per token id, never a secret.

Every check reads the bucket (a direct get, well under a millisecond), so a revoked token stops working at
once on every orchestrator replica: no cache can go on honouring it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.access.grants import Minted, check, token_id
from maestro.bus import Bus
from maestro.scan import current_entries
from proto.v1.access import ALL_TENANTS, TokenGrant


class TokenStore:
    """Grants by token id: create, look up, list, revoke; and the grant a presented token opens."""

    def __init__(self, bus: Bus) -> None:
        self._js = bus.js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(topics.BUCKET_TOKENS)
        return self._kv

    async def add(self, minted: Minted) -> TokenGrant:
        """Store a new token's grant (its id is fresh: create fails rather than overwrite one)."""
        await (await self._bucket()).create(minted.grant.id, codec.encode(minted.grant))
        return minted.grant

    async def get(self, grant_id: str) -> TokenGrant | None:
        """The grant stored under `grant_id`, or None (never made, or revoked)."""
        try:
            entry = await (await self._bucket()).get(grant_id)
        except KeyNotFoundError:
            return None
        return codec.decode(TokenGrant, entry.value) if entry.value else None

    async def opened_by(self, token: str, now: datetime | None = None) -> TokenGrant:
        """The grant a presented token opens now; raises BadToken (saying why, for the log) if none."""
        grant = await self.get(token_id(token))
        return check(token, grant, now or datetime.now(UTC))

    async def list(self, tenant: str = ALL_TENANTS) -> list[TokenGrant]:
        """Every grant (of `tenant` only, unless ALL_TENANTS), oldest first."""
        grants = [
            codec.decode(TokenGrant, entry.value)
            async for entry in current_entries(self._js, topics.BUCKET_TOKENS)
        ]
        kept = [g for g in grants if tenant in (ALL_TENANTS, g.tenant)]
        return sorted(kept, key=lambda g: (g.created_at, g.id))

    async def revoke(self, grant_id: str) -> TokenGrant | None:
        """Remove a grant and its history; the grant that was revoked, or None when there was none."""
        grant = await self.get(grant_id)
        if grant is not None:
            await (await self._bucket()).purge(grant_id)
        return grant
