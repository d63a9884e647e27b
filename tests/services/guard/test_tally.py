"""The guard's decision tallies: counted per tenant in memory, published every MAESTRO_TALLY_S and on stop."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

from maestro import codec, topics, topology
from maestro.access.nats_permissions import AGENTS, GUARD, ORCHESTRATOR, permissions, tenant_principal
from maestro.bus import Bus
from maestro.policy import bundle_store
from maestro.settings import Settings
from maestro.stream_range import read_range
from proto.v1 import (
    AwaitingApproval,
    ContextFile,
    Decision,
    DecisionTally,
    Queued,
    Rejected,
    TaskRequest,
    Violation,
)
from services.guard.tally import Publisher, Tally
from tests.services.guard.support import running_guard
from tests.services.guard.test_service import AWS, events_until_verdict, submit

T0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
LEAKY = [ContextFile(path=".env", content=f"AWS_ACCESS_KEY_ID={AWS}\n")]


def request(task_id: str, tenant: str = "acme", prompt: str = "Plan a CLI", **kwargs: object) -> TaskRequest:
    return TaskRequest(id=task_id, tenant=tenant, role="planner", prompt=prompt, **kwargs)  # type: ignore[arg-type]


def violation(rule_id: str, location: str = "prompt") -> Violation:
    return Violation(policy=rule_id.split(".")[0], rule_id=rule_id, location=location)


# -- the pure count -----------------------------------------------------------------------------------------
def test_a_tally_counts_verdicts_and_each_rule_once_per_decision_per_tenant() -> None:
    tally = Tally("guard-1", T0)
    # One request with the same key twice and a license: each rule counts once for it.
    twice = [
        violation("credentials.aws-access-key", "prompt:1"),
        violation("credentials.aws-access-key", "x"),
    ]
    tally.count(
        "acme", Decision(verdict="deny", violations=[*twice, violation("licenses.gpl")], policy_hash="h1")
    )
    tally.count("acme", Decision(verdict="allow", policy_hash="h1"))
    tally.count("acme", Decision(verdict="allow", policy_hash="h2"))
    tally.count("globex", Decision(verdict="approve", violations=[violation("residency.unknown")]))

    acme, globex = tally.take(T0 + timedelta(seconds=10))

    assert acme == DecisionTally(
        tenant="acme",
        at=T0,
        interval_s=10.0,
        guard="guard-1",
        bundle_hash="h2",  # the bundle of the interval's last decision
        verdicts={"deny": 1, "allow": 2},
        rules={"credentials.aws-access-key": 1, "licenses.gpl": 1},
    )
    assert (globex.tenant, globex.verdicts, globex.rules) == (
        "globex",
        {"approve": 1},
        {"residency.unknown": 1},
    )


def test_taking_starts_the_counts_again_and_a_quiet_interval_has_no_tally() -> None:
    tally = Tally("guard-1", T0)
    assert tally.take(T0 + timedelta(seconds=10)) == []
    tally.count("acme", Decision(verdict="allow"))
    (first,) = tally.take(T0 + timedelta(seconds=20))
    # The interval began at the last take, quiet or not.
    assert (first.at, first.interval_s, first.verdicts) == (T0 + timedelta(seconds=10), 10.0, {"allow": 1})
    assert tally.take(T0 + timedelta(seconds=30)) == []


def test_only_the_guard_publishes_tallies_and_the_orchestrator_reads_them() -> None:
    subject = topics.DECISION_TALLIES.subject("acme")
    assert permissions(GUARD, "_INBOX_G").may_publish(subject)
    for other in (AGENTS, ORCHESTRATOR, tenant_principal("acme")):
        assert not permissions(other, "_INBOX_X").may_publish(subject)
    reads = permissions(ORCHESTRATOR, "_INBOX_O")
    assert reads.may_publish(topics.js_api("CONSUMER", "CREATE", topics.STREAM_TALLIES))
    assert not permissions(tenant_principal("acme"), "_INBOX_T").may_publish(
        topics.js_api("CONSUMER", "CREATE", topics.STREAM_TALLIES)
    )


# -- publishing, on a real nats-server ----------------------------------------------------------------------
async def stored_tallies(bus: Bus, since: datetime) -> list[DecisionTally]:
    stored = await read_range(bus.js, topics.STREAM_TALLIES, [topics.DECISION_TALLIES.all], since)
    return [codec.decode(DecisionTally, m.data) for m in stored.messages]


async def tallies_stored(bus: Bus) -> int:
    return (await bus.js.stream_info(topics.STREAM_TALLIES)).state.messages


async def test_a_flush_publishes_what_was_counted_once_and_nothing_when_nothing_was(
    bus: Bus, settings: Settings
) -> None:
    tally = Tally("guard-1", datetime.now(UTC))
    publisher = Publisher(bus, tally)
    await publisher.flush()
    assert await tallies_stored(bus) == 0

    tally.count("acme", Decision(verdict="deny", violations=[violation("credentials.aws-access-key")]))
    await publisher.flush()
    await publisher.flush()
    assert await tallies_stored(bus) == 1
    stored = await bus.js.get_last_msg(topics.STREAM_TALLIES, topics.DECISION_TALLIES.subject("acme"))
    assert codec.decode(DecisionTally, stored.data or b"").verdicts == {"deny": 1}


async def test_tallies_nats_did_not_take_are_published_at_the_next_flush_once(
    bus: Bus, settings: Settings
) -> None:
    tally = Tally("guard-1", datetime.now(UTC))
    publisher = Publisher(bus, tally)
    await bus.js.delete_stream(topics.STREAM_TALLIES)
    tally.count("acme", Decision(verdict="allow"))
    await publisher.flush()
    assert publisher.unsent == 1

    await topology.ensure(bus.js, settings)
    tally.count("globex", Decision(verdict="allow"))
    await publisher.flush()
    assert publisher.unsent == 0
    tallies = await stored_tallies(bus, datetime.now(UTC) - timedelta(minutes=1))
    assert [(t.tenant, t.verdicts) for t in tallies] == [("acme", {"allow": 1}), ("globex", {"allow": 1})]
    # The first one's interval came before the second's: each keeps its own start.
    assert tallies[0].at < tallies[1].at


REDACT_GLOBEX = b"credentials: {action: redact}\n"


async def test_the_guard_publishes_its_decisions_per_tenant_as_it_runs_and_when_it_stops(
    bus: Bus, settings: Settings
) -> None:
    started = datetime.now(UTC)
    await bundle_store.push(bus.js, REDACT_GLOBEX, tenant="globex")
    acme = [request("a-ok-1"), request("a-ok-2"), request("a-leak", prompt="Deploy", context=LEAKY)]
    globex = [
        request("g-leak", prompt="Deploy", context=LEAKY, tenant="globex"),
        # Pinned to the EU, where no worker is declared to run: the residency family asks a human.
        request("g-pinned", data_region="eu", tenant="globex"),
    ]
    verdicts: list[object] = []
    async with running_guard(settings.with_(tally_s=0.3)):
        for req in acme:
            await submit(bus, req)
            verdicts.append((await events_until_verdict(bus, req.id))[-1])
        # The first interval's tally comes while the guard runs, from the loop, not from its stop.
        async with asyncio.timeout(5):
            while True:
                if await stored_tallies(bus, started):
                    break
                await asyncio.sleep(0.05)
        for req in globex:
            await submit(bus, req)
            verdicts.append((await events_until_verdict(bus, req.id))[-1])

    assert [type(v) for v in verdicts] == [Queued, Queued, Rejected, Queued, AwaitingApproval]
    tallies = await stored_tallies(bus, started)
    assert all(t.guard == settings.worker and sum(t.verdicts.values()) > 0 for t in tallies)
    by_tenant: dict[str, tuple[Counter[str], Counter[str]]] = {}
    for t in tallies:
        verdict_counts, rule_counts = by_tenant.setdefault(t.tenant, (Counter(), Counter()))
        verdict_counts.update(t.verdicts)
        rule_counts.update(t.rules)
    assert by_tenant == {
        "acme": (Counter(allow=2, deny=1), Counter({"credentials.aws-access-key": 1})),
        "globex": (
            Counter(redact=1, approve=1),
            Counter({"credentials.aws-access-key": 1, "residency.unknown-location": 1}),
        ),
    }
    in_force = await bundle_store.in_force_view(bus.js)
    assert {t.bundle_hash for t in tallies if t.tenant == "globex"} == {in_force.hash}
