"""The admin routes of the orchestrator's HTTP API: budgets, the policy bundle and the API's tokens.

What `maestro budget`, `maestro policy` and `maestro token` do over NATS with admin credentials, an operator
(a token of every tenant with scope admin) does here with its token: set a tenant's budget, push or reset the
policy bundle, make and revoke tokens. A tenant's admin reads its own budget and manages its own tenant's
tokens, and nothing more: it may not raise its own budget nor touch the bundle every tenant is judged by.
Another tenant's budget or token answers 404, as one that does not exist. A token is never logged: its id is.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from aiohttp import web
from msgspec import structs
from nats.errors import Error as NatsError

from maestro import operations, topics
from maestro.access.grants import Caller, mint
from maestro.access.http_auth import OPERATOR, Gate, forbidden, not_operator
from maestro.access.token_store import TokenStore
from maestro.bus import Bus
from maestro.errors import RemoteError
from maestro.http import error, json_answer, limited_body, route
from maestro.policy import bundle_store
from maestro.policy.bundle import BundleError
from proto.v1 import GetLedger, LedgerView, SetBudget
from proto.v1.access import ALL_TENANTS, IssuedToken, TokenRequest
from proto.v1.api import BudgetChange, Problem
from services.orchestrator.bodies import body_of, only, tenant_of

log = logging.getLogger(__name__)

_TOKEN_ID = re.compile(r"^[0-9a-f]{16}$")
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/plain"})
"""The content types a bundle may be pushed as."""


def _remote(exc: RemoteError, what: str) -> web.Response:
    """The answer for a budget service's error: its 4xx and 503 as they are, any other failure 502."""
    if 400 <= exc.code < 500 or exc.code == 503:
        return error(exc.code, f"{what}: {exc.description}")
    return error(502, f"{what}: the budget service failed ({exc.code}: {exc.description})")


def _unavailable(exc: Exception, what: str) -> web.Response:
    log.warning("could not %s: %r", what, exc)
    return error(503, f"could not {what}; try again")


def admin_routes(bus: Bus, gate: Gate) -> list[web.RouteDef]:
    """GET and PUT /v1/budgets/{tenant}; GET, PUT and DELETE /v1/policy; POST and GET /v1/tokens and DELETE
    /v1/tokens/{id}; each behind the token gate."""
    tokens = TokenStore(bus)
    limit = bus.settings.max_request_bytes

    # -- budgets ---------------------------------------------------------------------------------------
    def budget_tenant(request: web.Request, caller: Caller) -> str | web.Response:
        """The path's tenant when the caller sees it; 404 as for a tenant without a budget when not."""
        tenant = tenant_of(request.match_info["tenant"], "tenant")
        if isinstance(tenant, str) and not caller.sees(tenant):
            return error(404, f"no budget for tenant {tenant}")
        return tenant

    async def get_budget(request: web.Request, caller: Caller) -> web.StreamResponse:
        tenant = budget_tenant(request, caller)
        if isinstance(tenant, web.Response):
            return tenant
        if not caller.may("read", tenant):
            return forbidden(caller, "read", tenant)
        try:
            view = await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant=tenant), key=tenant)
        except RemoteError as exc:
            return _remote(exc, f"cannot read the budget of {tenant}")
        return json_answer(view)

    async def set_budget(request: web.Request, caller: Caller) -> web.StreamResponse:
        tenant = budget_tenant(request, caller)
        if isinstance(tenant, web.Response):
            return tenant
        if refused := not_operator(caller, f"change the budget of {tenant}"):
            return refused
        body = await body_of(request, BudgetChange, "budget change", limit)
        if isinstance(body, web.Response):
            return body
        change = budget_change(tenant, body)
        if isinstance(change, web.Response):
            return change
        try:
            view: LedgerView = await bus.calls.request(topics.BUDGET_SET, change, key=tenant)
        except RemoteError as exc:
            return _remote(exc, f"cannot change the budget of {tenant}")
        log.info("budget of %s changed by %s", tenant, caller.subject, extra={"tenant": tenant})
        return json_answer(view)

    # -- the policy bundle -----------------------------------------------------------------------------
    async def policy_answer() -> web.Response:
        try:
            return json_answer(await bundle_store.in_force_view(bus.js))
        except bundle_store.StoredBundleError as exc:
            message = "the stored bundle does not validate; the guards keep the one they had"
            return error(500, message, problems=_problems(exc))

    async def get_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := only(request, ()) or not_operator(caller, "read the policy bundle"):
            return refused
        return await policy_answer()

    async def push_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := only(request, ("tenant",)) or not_operator(caller, "push the policy bundle"):
            return refused
        tenant = request.query.get("tenant")
        if tenant is not None and isinstance(checked := tenant_of(tenant, "tenant"), web.Response):
            return checked
        if request.content_type not in YAML_TYPES:
            shown = request.content_type or "none"
            takes = ", ".join(sorted(YAML_TYPES))
            return error(415, f"a bundle is YAML text (Content-Type: {takes}), not {shown}")
        text = await limited_body(request, limit)
        if isinstance(text, web.Response):
            return text
        try:
            bundle = await bundle_store.push(bus.js, text, tenant, by=caller.subject)
        except bundle_store.StoredBundleError as exc:
            message = (
                "the stored bundle does not validate, so no override can be merged into it; push a whole one"
            )
            return error(409, message, problems=_problems(exc))
        except BundleError as exc:
            what = f"tenant {tenant}'s override" if tenant else "the bundle"
            return error(400, f"{what} has {len(exc.problems)} problem(s)", problems=_problems(exc))
        except (NatsError, TimeoutError) as exc:
            return _unavailable(exc, "store the bundle")
        scope = f"tenant {tenant}'s override" if tenant else "the whole bundle"
        log.info("policy bundle %s (%s) pushed by %s", bundle.version, scope, caller.subject)
        return await policy_answer()

    async def reset_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := only(request, ()) or not_operator(caller, "reset the policy bundle"):
            return refused
        try:
            await bundle_store.reset(bus.js, by=caller.subject)
        except (NatsError, TimeoutError) as exc:
            return _unavailable(exc, "reset the bundle")
        log.info("policy bundle reset to the shipped one by %s", caller.subject)
        return await policy_answer()

    # -- tokens ----------------------------------------------------------------------------------------
    def may_administer(caller: Caller, tenant: str) -> web.Response | None:
        """None when the caller manages `tenant`'s tokens: an operator any, a tenant's admin its own only."""
        if caller.operator or caller.may("admin", tenant):
            return None
        if "admin" in caller.scopes and caller.tenant != ALL_TENANTS:
            target = "every tenant" if tenant == ALL_TENANTS else f"tenant {tenant}"
            refusal = (
                f"this token administers tenant {caller.tenant} only; a token for {target} needs {OPERATOR}"
            )
            return error(403, refusal, field="$.tenant")
        return forbidden(caller, "admin", tenant)

    async def create_token(request: web.Request, caller: Caller) -> web.StreamResponse:
        wanted = await body_of(request, TokenRequest, "token request", limit)
        if isinstance(wanted, web.Response):
            return wanted
        if refused := may_administer(caller, wanted.tenant):
            return refused
        try:
            minted = mint(
                tenant=wanted.tenant,
                scopes=wanted.scopes,
                subject=wanted.subject or caller.subject,
                now=datetime.now(UTC),
                created_by=caller.subject,
                expires_at=wanted.expires_at,
            )
        except ValueError as exc:
            return error(400, f"cannot make that token: {exc}", field="$.expires_at")
        try:
            grant = await tokens.add(minted)
        except (NatsError, TimeoutError) as exc:
            return _unavailable(exc, "store the token")
        log.info("token %s for tenant %s made by %s", grant.id, grant.tenant, caller.subject)
        return json_answer(IssuedToken(token=minted.token, grant=grant.view()), status=201)

    async def list_tokens(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := only(request, ("tenant",)):
            return refused
        tenant = request.query.get("tenant", caller.tenant)
        if tenant != ALL_TENANTS and isinstance(checked := tenant_of(tenant, "tenant"), web.Response):
            return checked
        if caller.tenant not in (ALL_TENANTS, tenant):
            return error(403, f"this token administers tenant {caller.tenant} only", field="tenant")
        if refused := may_administer(caller, tenant):
            return refused
        try:
            grants = await tokens.list(tenant)
        except (NatsError, TimeoutError) as exc:
            return _unavailable(exc, "list the tokens")
        return json_answer([grant.view() for grant in grants])

    async def revoke_token(request: web.Request, caller: Caller) -> web.StreamResponse:
        token_id = request.match_info["id"]
        if not _TOKEN_ID.match(token_id):
            return error(400, f"not a token id (16 hex digits): {token_id[:64]!r}", field="id")
        try:
            grant = await tokens.get(token_id)
            if grant is None or not caller.sees(grant.tenant):
                return error(404, f"no token {token_id}")
            if refused := may_administer(caller, grant.tenant):
                return refused
            revoked = await tokens.revoke(token_id)
        except (NatsError, TimeoutError) as exc:
            return _unavailable(exc, "revoke the token")
        if revoked is None:  # revoked by someone else meanwhile
            return error(404, f"no token {token_id}")
        log.info("token %s of tenant %s revoked by %s", revoked.id, revoked.tenant, caller.subject)
        return json_answer(revoked.view())

    guarded = gate.guarded
    return [
        route(operations.GET_BUDGET, guarded(get_budget)),
        route(operations.SET_BUDGET, guarded(set_budget)),
        route(operations.GET_POLICY, guarded(get_policy)),
        route(operations.PUSH_POLICY, guarded(push_policy)),
        route(operations.RESET_POLICY, guarded(reset_policy)),
        route(operations.CREATE_TOKEN, guarded(create_token)),
        route(operations.LIST_TOKENS, guarded(list_tokens)),
        route(operations.REVOKE_TOKEN, guarded(revoke_token)),
    ]


def budget_change(tenant: str, body: BudgetChange) -> SetBudget | web.Response:
    """The SetBudget a PUT /v1/budgets/{tenant} body asks for, the path naming its tenant (a body may repeat
    it, not name another); or the JSON 400 when the body names another tenant."""
    if body.tenant not in (None, tenant):
        return error(400, f"the body names tenant {body.tenant!r}, the path {tenant!r}", field="$.tenant")
    return SetBudget(**{**structs.asdict(body), "tenant": tenant})


def _problems(exc: BundleError) -> list[Problem]:
    return [Problem(message=p.message, line=p.line, path=p.path) for p in exc.problems]
