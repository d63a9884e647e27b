"""The stored bundle's provenance: who pushed it and when, read alike from new and older entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from maestro import topics
from maestro.bus import Bus
from maestro.policy import bundle_store
from maestro.policy.bundle import load_default, parse

BUNDLE = b"version: store-1\ntenants:\n  acme: {credentials: {action: redact}}\n"


async def test_nothing_pushed_means_the_shipped_bundle(bus: Bus) -> None:
    stored = await bundle_store.in_force(bus.js)
    assert (stored.source, stored.revision, stored.by, stored.at) == ("shipped", 0, "", None)
    assert stored.bundle.hash == load_default().hash


async def test_a_push_keeps_who_and_when_and_a_reset_is_recorded_the_same_way(bus: Bus) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    await bundle_store.push(bus.js, BUNDLE, by="alice")
    stored = await bundle_store.in_force(bus.js)
    assert (stored.source, stored.by, stored.bundle.version) == ("pushed", "alice", "store-1")
    assert stored.at is not None and before <= stored.at <= datetime.now(UTC) + timedelta(seconds=5)
    assert stored.revision > 0

    await bundle_store.push(bus.js, b"budget: {max_task_micro_usd: 9}\n", tenant="acme", by="bob")
    stored = await bundle_store.in_force(bus.js)
    assert (stored.source, stored.by) == ("pushed", "bob")
    assert stored.bundle.policy("acme").budget.max_task_micro_usd == 9

    await bundle_store.reset(bus.js, by="carol")
    stored = await bundle_store.in_force(bus.js)
    assert (stored.source, stored.by, stored.bundle.hash) == ("shipped", "carol", load_default().hash)
    assert stored.at is not None and stored.revision > 0
    # The guards follow the bucket: a reset reads as no bundle stored, so they fall back to the shipped one.
    kv = await bundle_store.policy_bucket(bus.js)
    assert (await bundle_store.read(kv))[0] is None


async def test_a_bundle_stored_before_provenance_was_kept_still_reads(bus: Bus) -> None:
    kv = await bus.js.key_value(topics.BUCKET_POLICY)
    await kv.put(topics.POLICY_BUNDLE_KEY, BUNDLE)  # as earlier versions of push did: no headers
    stored = await bundle_store.in_force(bus.js)
    assert (stored.source, stored.by, stored.bundle.hash) == ("pushed", "", parse(BUNDLE).hash)
    assert stored.at is not None
