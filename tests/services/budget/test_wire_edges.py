"""The budget as an outside client meets it: raw JSON on its request/reply subjects, hostile inputs.

Nothing here goes through the ledger's Python types on the way in: a request is the bytes a client in any
language could send. A wrong input is answered 400 with the field named, never 500 or 503 (429 is
backpressure and 503 NATS being away, which the caller should retry), and committed plus held never passes the
limit, whatever two replicas are asked at once.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors

from maestro import codec, topics
from maestro.bus import Bus
from maestro.pricing import Price, PriceTable
from maestro.settings import Settings
from proto.v1 import ROLES, GetLedger, LedgerView, Reserve
from proto.v1.ids import MAX_MICRO_USD, MAX_TOKENS
from services.budget import ledger
from services.budget.ledger import Ledger
from tests.services.budget.support import budget

# `m`: one micro-USD per input token; `dear`: a million micro-USD per token, so that a count of tokens
# within its own bound prices far past the bound on money.
PRICING = "m=1:0,dear=1000000:0,local=0:0"
LONG_MODEL = "m" + "x" * 127  # as long as a model's name may be


@dataclass(frozen=True)
class Reply:
    """What a client gets back: the error code (200 when none), its description, and the body."""

    code: int
    description: str
    body: dict[str, Any]


async def call(
    bus: Bus, endpoint: topics.Endpoint[Any, Any], payload: Any, *, partition: bool = False
) -> Reply:
    """Send `payload` as JSON (bytes as they are) on the endpoint's public or partition subject.

    A partition nobody owns yet answers no-responders: a client then asks the public subject.
    """
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    try:
        if not partition:
            raise nats.errors.NoRespondersError
        msg = await bus.nc.request(endpoint.partition_subject("acme"), data, timeout=5)
    except nats.errors.NoRespondersError:
        msg = await bus.nc.request(endpoint.subject, data, timeout=5)
    headers = msg.headers or {}
    code = int(headers.get(topics.HEADER_ERROR_CODE, 200))
    body = json.loads(msg.data) if code == 200 and msg.data else {}
    return Reply(code, headers.get(topics.HEADER_ERROR, ""), body)


async def refused(bus: Bus, endpoint: topics.Endpoint[Any, Any], payload: Any, *named: str) -> str:
    """Assert the payload is answered 400 naming each of `named`; the description."""
    for partition in (False, True):
        reply = await call(bus, endpoint, payload, partition=partition)
        assert reply.code == 400, (payload, reply)
        for name in named:
            assert name in reply.description, (payload, reply.description)
    return reply.description


async def view(bus: Bus, tenant: str = "acme") -> LedgerView:
    """The tenant's ledger, decoded with the wire type: an amount past its bound fails here."""
    reply = await call(bus, topics.BUDGET_GET, {"tenant": tenant})
    assert reply.code == 200, reply
    return codec.decode(LedgerView, json.dumps(reply.body))


def reserve(task: str, amount: Any = 10, **fields: Any) -> dict[str, Any]:
    return {"tenant": "acme", "task_id": task, "estimate_micro_usd": amount, **fields}


def sub_limit(scope: str, name: Any, **limits: Any) -> dict[str, Any]:
    return {"tenant": "acme", "scope": scope, "name": name, **(limits or {"limit_micro_usd": 5})}


def commit(task: str, model: Any = "m", **usage: Any) -> dict[str, Any]:
    return {"tenant": "acme", "reservation_id": f"r-{task}", "usage": {"model": model, **usage}}


async def test_amounts_outside_their_bounds_or_not_integers_are_400_naming_the_field(
    settings: Settings, bus: Bus
) -> None:
    async with budget(settings.with_(pricing=PRICING), bus):
        for bad in (-1, 2**63, 2**64, MAX_MICRO_USD + 1, 1.5, "100", True, None, 1e3, [1], {"usd": 1}):
            await refused(bus, topics.BUDGET_RESERVE, reserve("t1", bad), "estimate_micro_usd")
            for field in ("limit_micro_usd", "task_ceiling_micro_usd"):
                if bad is None:
                    continue  # a change leaves out what it does not change
                await refused(bus, topics.BUDGET_SET, {"tenant": "acme", field: bad}, field)
        for bad in (-1, 2**64, MAX_TOKENS + 1, 0.5, "7", False):
            await refused(bus, topics.BUDGET_RESERVE, reserve("t1", estimate_tokens=bad), "estimate_tokens")
            await refused(bus, topics.BUDGET_SET, {"tenant": "acme", "limit_tokens": bad}, "limit_tokens")
            for field in ("input_tokens", "output_tokens"):
                await refused(bus, topics.BUDGET_COMMIT, commit("t1", **{field: bad}), f"usage.{field}")
        # A hold that would outlive any task, or one already over.
        for bad in (0, -1, "60", 1e12, 1e300):
            await refused(bus, topics.BUDGET_RESERVE, reserve("t1", ttl_s=bad), "ttl_s")
        await refused(
            bus, topics.BUDGET_RESERVE, b'{"tenant":"acme","task_id":"t1","estimate_micro_usd":1e400}'
        )
        # Zero is an amount like any other, and the bounds themselves are valid.
        zero = await call(bus, topics.BUDGET_RESERVE, reserve("t0", 0))
        assert zero.code == 200 and zero.body["granted"] and zero.body.get("held_micro_usd", 0) == 0
        top = await call(bus, topics.BUDGET_SET, {"tenant": "acme", "limit_micro_usd": MAX_MICRO_USD})
        assert top.code == 200 and top.body["limit_micro_usd"] == MAX_MICRO_USD
        assert (await view(bus)).holds == 1


async def test_sums_and_products_past_the_bounds_are_400_and_change_nothing(
    settings: Settings, bus: Bus
) -> None:
    async with budget(settings.with_(pricing=PRICING, default_limit_micro_usd=MAX_MICRO_USD), bus):
        # A price times a count of tokens, each within its bound, beyond the bound on money.
        assert (await call(bus, topics.BUDGET_RESERVE, reserve("t1", 1000, model="dear"))).body["granted"]
        why = await refused(bus, topics.BUDGET_COMMIT, commit("t1", "dear", input_tokens=MAX_TOKENS))
        assert str(MAX_MICRO_USD) in why
        before = await view(bus)
        assert (before.spent_micro_usd, before.held_micro_usd, before.holds) == (0, 1000, 1)
        # The hold is still there: a believable usage is charged.
        settled = await call(bus, topics.BUDGET_COMMIT, commit("t1", "dear", input_tokens=1))
        assert settled.code == 200 and settled.body["charged_micro_usd"] == 1_000_000

        # Held tokens add up past the bound on tokens when the tenant has no token limit.
        half = MAX_TOKENS // 2 + 1
        assert (await call(bus, topics.BUDGET_RESERVE, reserve("a", estimate_tokens=half))).body["granted"]
        await refused(
            bus, topics.BUDGET_RESERVE, reserve("b", estimate_tokens=half), "tokens", str(MAX_TOKENS)
        )
        # Spent money adds up past the bound on money through commits that overrun their holds.
        tokens = MAX_MICRO_USD // 2 // 1_000_000 + 1  # of `dear`: just over half the bound each
        for task in ("c", "d"):
            assert (await call(bus, topics.BUDGET_RESERVE, reserve(task, 1))).body["granted"]
        assert (await call(bus, topics.BUDGET_COMMIT, commit("c", "dear", input_tokens=tokens))).code == 200
        why = await refused(bus, topics.BUDGET_COMMIT, commit("d", "dear", input_tokens=tokens), "spent")
        assert str(MAX_MICRO_USD) in why
        after = await view(bus)  # every amount still decodes with its bounded wire type
        assert after.spent_micro_usd == 1_000_000 * (1 + tokens) and after.holds == 2


async def test_oversized_and_unknown_names_are_400_naming_the_field(settings: Settings, bus: Bus) -> None:
    async with budget(settings.with_(pricing=PRICING), bus):
        for role in ("wizard", "Planner", "x" * 5000, "planner\n"):
            await refused(bus, topics.BUDGET_RESERVE, reserve("t1", role=role), "role")
            await refused(bus, topics.BUDGET_SET, sub_limit("role", role), "name")
        for model in ("x" * 5000, "m" * 129, "a b", "../etc", "m\u00e9", ""):
            if model:
                await refused(bus, topics.BUDGET_RESERVE, reserve("t1", model=model), "model")
                await refused(bus, topics.BUDGET_SET, sub_limit("model", model), "name")
            await refused(bus, topics.BUDGET_COMMIT, commit("t1", model), "usage.model")
        await refused(
            bus, topics.BUDGET_SET, {"tenant": "acme", "scope": "department", "name": "ops"}, "scope"
        )
        await refused(
            bus, topics.BUDGET_SET, {"tenant": "acme", "scope": "model", "limit_micro_usd": 5}, "name"
        )
        await refused(bus, topics.BUDGET_SET, {"tenant": "acme", "window": "weekly"}, "window")
        for tenant in ("Acme", "a" * 64, "acme.*", ">", ""):
            await refused(bus, topics.BUDGET_GET, {"tenant": tenant}, "tenant")
            await refused(bus, topics.BUDGET_RESERVE, {**reserve("t1"), "tenant": tenant}, "tenant")
        for task in ("t" * 65, "a b", "t.1", "*", ""):
            await refused(bus, topics.BUDGET_RESERVE, reserve(task), "task_id")
        for rid in ("r-" + "t" * 5000, "t1", "r-a b", ""):
            await refused(
                bus, topics.BUDGET_COMMIT, {**commit("t1"), "reservation_id": rid}, "reservation_id"
            )
            await refused(
                bus, topics.BUDGET_RELEASE, {"tenant": "acme", "reservation_id": rid}, "reservation_id"
            )
        # The longest valid names are held, and the ledger says so.
        granted = await call(
            bus, topics.BUDGET_RESERVE, reserve("t" * 64, role="doc-writer", model=LONG_MODEL)
        )
        assert granted.code == 200 and granted.body["granted"], granted
        assert (await call(bus, topics.BUDGET_SET, sub_limit("model", LONG_MODEL))).code == 200
        assert (await view(bus)).models[LONG_MODEL].limit_micro_usd == 5


async def test_the_role_a_sub_limit_names_must_exist_and_model_sub_limits_are_bounded(
    settings: Settings, bus: Bus
) -> None:
    async with budget(settings.with_(pricing=PRICING), bus):
        why = await refused(bus, topics.BUDGET_SET, sub_limit("role", "wizard"), "name")
        assert "wizard" in why and all(role in why for role in ROLES)
        for role in ROLES:
            assert (await call(bus, topics.BUDGET_SET, sub_limit("role", role))).code == 200
        models = [f"{LONG_MODEL[:120]}{n:08d}" for n in range(ledger.MAX_SCOPES)]
        for n, model in enumerate(models):
            assert (await call(bus, topics.BUDGET_SET, sub_limit("model", model, limit_tokens=n))).code == 200
        one_more = sub_limit("model", "one-more", limit_tokens=1)
        why = await refused(bus, topics.BUDGET_SET, one_more, str(ledger.MAX_SCOPES), "model")
        # Changing or removing one that is there is fine, and makes room.
        assert (await call(bus, topics.BUDGET_SET, sub_limit("model", models[0], limit_tokens=9))).code == 200
        assert (await call(bus, topics.BUDGET_SET, sub_limit("model", models[0], remove=True))).code == 200
        assert (await call(bus, topics.BUDGET_SET, one_more)).code == 200
        shown = await view(bus)
        assert len(shown.models) == ledger.MAX_SCOPES and set(shown.roles) == set(ROLES)


async def test_long_names_fill_a_ledger_to_backpressure_never_past_the_payload_limit(
    settings: Settings, bus: Bus
) -> None:
    # Open holds with the longest task ids, roles and model names a request may carry, stored as the
    # service would have written them (faster than thousands of round trips), then more over the wire.
    def fat(n: int) -> Reserve:
        return Reserve(
            tenant="acme",
            task_id=f"t{n:063d}",
            estimate_micro_usd=10**11 + n,
            estimate_tokens=10**8,
            role="implementer",
            model=f"{LONG_MODEL[:120]}{n % 7:08d}",
        )

    prices = PriceTable({}, Price(1, 1))
    start = 2000
    filled = ledger.apply(
        Ledger(tenant="acme", limit_micro_usd=MAX_MICRO_USD),
        [fat(n) for n in range(start)],
        time.time(),
        prices,
    )
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    await kv.put("acme", codec.encode(filled.ledger))
    async with budget(settings.with_(pricing="*=0.000001:0.000001"), bus):
        more = [msgspec.to_builtins(fat(n)) for n in range(start, ledger.MAX_HOLDS)]
        replies = await asyncio.gather(*(call(bus, topics.BUDGET_RESERVE, r) for r in more))
        backpressure = [r for r in replies if r.code == 429]
        print(
            {
                (r.code, r.description[:150], str(r.body.get("granted")), r.body.get("reason", "")[:100])
                for r in replies
            }
        )
        assert {r.code for r in replies} <= {200, 429}
        assert backpressure, "the ledger's room ran out before its count of holds"
        assert all("retry once some are committed or released" in r.description for r in backpressure)
        entry = await kv.get("acme")
        assert entry.value is not None and len(entry.value) < 2**20
        shown = await view(bus)
        assert shown.holds == start + sum(r.code == 200 for r in replies) < ledger.MAX_HOLDS
        # A release makes room again.
        released = await call(
            bus, topics.BUDGET_RELEASE, {"tenant": "acme", "reservation_id": f"r-t{0:063d}"}
        )
        assert released.code == 200
        again = await call(bus, topics.BUDGET_RESERVE, more[-1])
        assert again.code == 200 and again.body["granted"]


async def test_unknown_fields_are_tolerated_and_a_misspelt_required_one_is_named(
    settings: Settings, bus: Bus
) -> None:
    # The budget's callers are Maestro's own services, which may be newer: between services, a field this
    # version does not know is ignored (docs/ARCHITECTURE.md); the public edges refuse them before here.
    async with budget(settings.with_(pricing=PRICING), bus):
        tolerated = await call(
            bus, topics.BUDGET_RESERVE, {**reserve("t1", 5), "priority": "high", "x": [1, {}]}
        )
        assert tolerated.code == 200 and tolerated.body["held_micro_usd"] == 5
        misspelt = {"tenant": "acme", "task_id": "t2", "estimate_micro_us": 5}
        await refused(bus, topics.BUDGET_RESERVE, misspelt, "estimate_micro_usd")
        await refused(bus, topics.BUDGET_COMMIT, {"tenant": "acme", "reservation_id": "r-t1"}, "usage")
        for junk in (b"", b"null", b"[]", b"{", b"\xff\xfe", b'"acme"', b"{" * 10_000, b"1" * 10_000):
            for endpoint in (
                topics.BUDGET_RESERVE,
                topics.BUDGET_COMMIT,
                topics.BUDGET_SET,
                topics.BUDGET_GET,
            ):
                assert (await call(bus, endpoint, junk)).code == 400
        assert (await view(bus)).held_micro_usd == 5


async def test_two_replicas_under_a_hostile_mix_never_overspend_and_never_fail(
    settings: Settings, bus: Bus
) -> None:
    limit = 1_000_000
    rng = random.Random(8)
    async with budget(settings.with_(pricing=PRICING, default_limit_micro_usd=limit), bus, replicas=2):

        def hostile(n: int) -> tuple[dict[str, Any], bool]:
            """A reservation and whether it is valid."""
            match n % 6:
                case 0:
                    return reserve(f"t{n}", rng.choice([-5, 2**63, 1.5, "9"])), False
                case 1:
                    return reserve(f"t{n}", 10, model="y" * rng.randint(129, 5000)), False
                case 2:
                    return reserve(f"t{n}", 10, role=rng.choice(["wizard", "x", "Planner"])), False
                case _:
                    return reserve(f"t{n}", rng.randint(0, 30_000), role=rng.choice(ROLES), model="m"), True

        requests = [hostile(n) for n in range(240)]
        replies = await asyncio.gather(
            *(call(bus, topics.BUDGET_RESERVE, r, partition=n % 2 == 0) for n, (r, _) in enumerate(requests))
        )
        for (request, valid), reply in zip(requests, replies, strict=True):
            if valid:
                assert reply.code == 200, (request, reply)
                assert reply.body["granted"] or "budget exceeded" in reply.body["reason"]
            else:
                assert reply.code == 400 and reply.description, (request, reply)
        shown = await view(bus)
        held = sum(r.body["held_micro_usd"] for r in replies if r.code == 200 and r.body["granted"])
        assert shown.held_micro_usd == held <= limit

        # Commits through both replicas at once, each twice, with usage within its hold (so no overage),
        # and hostile ones among them for holds kept aside: each valid one is charged once, every hostile
        # one is refused and charges nothing, and spent plus held stays within the limit.
        held = {r.body["task_id"]: r.body.get("held_micro_usd", 0) for r in replies if r.body.get("granted")}
        aside = list(held)[-4:]
        commits = [
            commit(task, input_tokens=amount // 2) for task, amount in held.items() if task not in aside
        ]
        hostile = [
            (commit(aside[0], input_tokens=-1), 400),
            (commit(aside[1], "dear", input_tokens=MAX_TOKENS), 400),  # a price past the bound on money
            (commit(aside[2], "y" * 300, input_tokens=1), 400),
            ({**commit(aside[3]), "reservation_id": "r-" + "x" * 70}, 400),
            (commit("never-reserved", input_tokens=1), 404),
            ({**commit(aside[0]), "usage": {"model": "m", "input_tokens": 1.5}}, 400),
        ]
        mixed = [(c, 200) for c in commits * 2] + hostile * 2
        rng.shuffle(mixed)
        settled = await asyncio.gather(
            *(call(bus, topics.BUDGET_COMMIT, c, partition=n % 2 == 1) for n, (c, _) in enumerate(mixed))
        )
        for (request, code), reply in zip(mixed, settled, strict=True):
            assert reply.code == code and (code == 200 or reply.description), (request, reply)
        shown = await view(bus)
        assert shown.spent_micro_usd == sum(held[c["reservation_id"][2:]] // 2 for c in commits)
        assert shown.held_micro_usd == sum(held[task] for task in aside) and shown.holds == len(aside)
        assert shown.spent_micro_usd + shown.held_micro_usd <= limit
        for task in aside:
            released = await call(
                bus, topics.BUDGET_RELEASE, {"tenant": "acme", "reservation_id": f"r-{task}"}
            )
            assert released.code == 200 and not released.body.get("already_settled")
        shown = await view(bus)
        assert shown.held_micro_usd == 0 and shown.holds == 0
        assert codec.decode(LedgerView, codec.encode(shown)) == shown
        assert (await call(bus, topics.BUDGET_GET, msgspec.to_builtins(GetLedger(tenant="acme")))).code == 200
