"""The dispatcher's queue depth gauges name the first tenants and add the rest up under `other`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from maestro.tenant_labels import TenantLabels
from services.orchestrator.dispatch.dispatcher import DispatchMetrics
from services.orchestrator.dispatch.fair import FairQueue, Share, Waiting


def test_tenants_past_the_named_ones_add_up_under_other_with_the_oldest_wait() -> None:
    queue = FairQueue(lambda _: Share())
    arrivals = [("acme", 10.0), ("acme", 20.0), ("globex", 30.0), ("initech", 40.0), ("initech", 45.0)]
    for seq, (tenant, since) in enumerate(arrivals, start=1):
        queue.add(Waiting(seq=seq, role="tester", priority=5, tenant=tenant, since=since))
    queue.add(Waiting(seq=9, role="tester", priority=5, tenant="umbrella", since=35.0))
    registry = CollectorRegistry()
    label = TenantLabels(1)
    label("acme")  # the first tenant this process saw
    DispatchMetrics.create(registry, lambda: 100.0, label).depth.queue = queue

    exported = {
        (s.name, s.labels["tenant"]): s.value for family in registry.collect() for s in family.samples
    }

    assert exported == {
        ("maestro_dispatch_waiting", "acme"): 2,
        ("maestro_dispatch_waiting", "other"): 4,
        ("maestro_dispatch_oldest_wait_seconds", "acme"): 90,
        ("maestro_dispatch_oldest_wait_seconds", "other"): 70,  # globex's, waiting since 30
    }
