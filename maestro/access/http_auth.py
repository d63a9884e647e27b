"""Who calls the HTTP API: the bearer token of each request checked against the token bucket.

Every /v1 route is wrapped (`Gate.guarded`): without a valid token the answer is 401 and the handler never
runs; with one, the handler gets the Caller and decides by the tenant of what it touches. Another tenant's
task or workflow is answered as if it did not exist (404), so ids cannot be probed; a missing scope in the
caller's own tenant is 403. A token is never logged, only its id.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from nats.errors import Error as NatsError
from prometheus_client import Counter

from maestro.access.grants import BadToken, Caller
from maestro.access.token_store import TokenStore
from maestro.bus import Bus
from maestro.http import error
from maestro.listing import Query
from proto.v1.access import ALL_TENANTS, Scope

log = logging.getLogger(__name__)

GuardedHandler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
_REALM = 'Bearer realm="maestro"'


def unauthorized(message: str, *, invalid: bool) -> web.Response:
    """401 with the challenge RFC 6750 asks for (`error="invalid_token"` when a token was presented)."""
    challenge = f'{_REALM}, error="invalid_token"' if invalid else _REALM
    return error(401, message, headers={hdrs.WWW_AUTHENTICATE: challenge})


def forbidden(caller: Caller, scope: Scope, tenant: str) -> web.Response:
    """403: the caller acts in `tenant` but its token lacks `scope` there."""
    held = ", ".join(sorted(caller.scopes))
    return error(403, f"this token may not {scope} in tenant {tenant} (it has: {held})", scope=scope)


class Gate:
    """The API's door: reads each request's token (or lets everyone in when MAESTRO_AUTH=off)."""

    def __init__(self, bus: Bus) -> None:
        self._tokens = TokenStore(bus)
        self._on = bus.settings.auth
        self._refused = Counter(
            "maestro_api_unauthenticated_total",
            "API calls refused for their token before any handler ran (401), by why: none, invalid",
            ["reason"],
            registry=bus.metrics.registry,
        )

    async def caller(self, request: web.Request) -> Caller | web.Response:
        """The request's caller, or the 401 (or 503, when the bucket cannot be read) to answer."""
        if not self._on:
            return Caller.anyone()
        scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self._refused.labels("none").inc()
            return unauthorized(
                "this API needs a bearer token (Authorization: Bearer <token>; maestro token create)",
                invalid=False,
            )
        try:
            grant = await self._tokens.opened_by(token.strip())
        except BadToken as exc:
            log.info("refused %s %s: %s", request.method, request.path, exc)
            self._refused.labels("invalid").inc()
            refusal = "the token is not valid (unknown, revoked, expired or malformed)"
            return unauthorized(refusal, invalid=True)
        except (NatsError, TimeoutError) as exc:
            log.warning("could not check a token: %r", exc)
            return error(503, "could not check the token; try again")
        return Caller.of(grant)

    def guarded(self, handler: GuardedHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """`handler` behind the door: it runs only for a caller with a valid token, and is given it."""

        async def handle(request: web.Request) -> web.StreamResponse:
            caller = await self.caller(request)
            if isinstance(caller, web.Response):
                return caller
            return await handler(request, caller)

        return handle


OPERATOR = "an operator's token (tenant *, scope admin)"


def not_operator(caller: Caller, what: str) -> web.Response | None:
    """403 unless the caller administers every tenant; the message says why a tenant's admin cannot."""
    if caller.operator:
        return None
    if caller.tenant != ALL_TENANTS and "admin" in caller.scopes:
        why = f"a tenant's admin (this token administers {caller.tenant}) may not {what}"
    else:
        why = f"this token (tenant {caller.tenant}, scopes {', '.join(sorted(caller.scopes))}) may not {what}"
    return error(403, f"{why}: that needs {OPERATOR}", scope="admin")


def actor(caller: Caller, scope: Scope, tenant: str, claimed: str) -> str | web.Response:
    """Who a decision or an order in `tenant` is by, or the 403 to answer when the caller's token does not
    cover `scope` there. By the token's subject (a body's `by` may only repeat it), or, with auth off,
    whatever the body says (`api` when nothing)."""
    if not caller.may(scope, tenant):
        return forbidden(caller, scope, tenant)
    if not caller.authenticated:
        return claimed or caller.subject
    if claimed and claimed != caller.subject:
        return error(403, f"this token acts as {caller.subject!r}, not {claimed!r}", field="$.by")
    return caller.subject


def listing_for(caller: Caller, query: Query) -> Query | web.Response:
    """`query` narrowed to what the caller may read: its own tenant's records (403 for another's)."""
    if caller.tenant == ALL_TENANTS:
        reads = "read" in caller.scopes or "admin" in caller.scopes
        return query if reads else forbidden(caller, "read", ALL_TENANTS)
    if query.tenant is not None and query.tenant != caller.tenant:
        return error(403, f"this token reads tenant {caller.tenant} only", field="tenant")
    if not caller.may("read", caller.tenant):
        return forbidden(caller, "read", caller.tenant)
    return dataclasses.replace(query, tenant=caller.tenant)
