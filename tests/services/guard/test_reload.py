"""Hot reload on a real nats-server: guards follow pushed bundles, refuse broken ones, fall back when none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from maestro import topics
from maestro.bus import Bus
from maestro.history import follow_events
from maestro.policy import bundle_store
from maestro.policy.bundle import BundleError, load_default, parse
from maestro.settings import Settings
from proto.v1 import Accepted, Decision, Queued, Rejected, TaskRequest
from tests.services.guard.support import running_guard

STRICT = b"""\
version: strict-1
default:
  budget: {max_task_micro_usd: 1}   # every task costs more than one micro-USD
"""
BROKEN = b"""\
version: broken-1
default:
  budget: {action: explode}
"""


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def in_force(registry: CollectorRegistry, version: str) -> Callable[[], bool]:
    hash_ = parse(STRICT).hash if version == "strict-1" else load_default().hash
    labels = {"version": version, "hash": hash_}
    return lambda: registry.get_sample_value("maestro_guard_policy_bundle_info", labels) == 1


def refused(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("maestro_guard_policy_bundle_updates_total", {"outcome": "refused"}) or 0


async def verdict(bus: Bus, task_id: str) -> Decision:
    """Submit a clean request under `task_id` and return the guard's decision on it."""
    req = TaskRequest(id=task_id, tenant="acme", role="planner", prompt="Plan a CLI that counts words")
    await bus.streams.publish(topics.REQUESTS.at(req.tenant), req, msg_id=req.id)
    async with asyncio.timeout(10):
        async for event in follow_events(bus.js, task_id):
            match event:
                case Queued(decision=decision) | Rejected(decision=decision):
                    return decision
                case Accepted():
                    continue
    raise AssertionError("no verdict")


async def test_a_running_guard_switches_to_a_pushed_bundle_and_refuses_a_broken_one(
    bus: Bus, settings: Settings
) -> None:
    shipped = load_default()
    async with running_guard(settings) as registry:
        await until(in_force(registry, shipped.version))
        before = await verdict(bus, "reload-1")
        assert (before.verdict, before.policy_version, before.policy_hash) == (
            "allow",
            shipped.version,
            shipped.hash,
        )

        pushed = await bundle_store.push(bus.js, STRICT)
        await until(in_force(registry, "strict-1"))
        after = await verdict(bus, "reload-2")
        assert (after.verdict, after.policy_version, after.policy_hash) == ("deny", "strict-1", pushed.hash)
        assert [v.rule_id for v in after.violations] == ["budget.task-ceiling"]

        # `policy push` refuses it outright; written to the bucket anyway, the guard refuses it.
        with pytest.raises(BundleError):
            await bundle_store.push(bus.js, BROKEN)
        kv = await bus.js.key_value(topics.BUCKET_POLICY)
        await kv.put(topics.POLICY_BUNDLE_KEY, BROKEN)
        await until(lambda: refused(registry) == 1)
        still = await verdict(bus, "reload-3")
        assert (still.verdict, still.policy_version) == ("deny", "strict-1")
        assert in_force(registry, "strict-1")()

        # Deleting the stored bundle brings back the shipped one.
        await kv.delete(topics.POLICY_BUNDLE_KEY)
        await until(in_force(registry, shipped.version))
        assert (await verdict(bus, "reload-4")).policy_version == shipped.version


async def test_a_guard_starts_with_the_stored_bundle_and_refuses_a_broken_one_at_start(
    bus: Bus, settings: Settings
) -> None:
    await bundle_store.push(bus.js, STRICT)
    async with running_guard(settings) as registry:
        assert (await verdict(bus, "start-1")).policy_version == "strict-1"

    kv = await bus.js.key_value(topics.BUCKET_POLICY)
    await kv.put(topics.POLICY_BUNDLE_KEY, BROKEN)
    async with running_guard(settings) as registry:
        await until(lambda: refused(registry) == 1)
        assert in_force(registry, load_default().version)()
        assert (await verdict(bus, "start-2")).policy_version == load_default().version


async def test_a_tenant_override_is_merged_into_the_stored_bundle(bus: Bus, settings: Settings) -> None:
    await bundle_store.push(bus.js, STRICT)
    merged = await bundle_store.push(bus.js, b"budget: {max_task_micro_usd: null}\n", tenant="acme")
    assert merged.version.startswith("strict-1+acme.")
    assert merged.policy("acme").budget.max_task_micro_usd is None
    assert merged.policy("globex").budget.max_task_micro_usd == 1
    async with running_guard(settings):
        decision = await verdict(bus, "tenant-1")
    assert (decision.verdict, decision.policy_version) == ("allow", merged.version)
