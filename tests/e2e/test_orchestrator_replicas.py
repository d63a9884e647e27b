"""Two orchestrator replicas, real processes on a real nats-server: one leads (dispatches, and folds every
event while it keeps up; the other folds only under a backlog, and then tells it what it folds:
tests/services/orchestrator/test_leading.py); a tenant's running limit holds across them, and across a
SIGKILL of the leader, after which the survivor leads and every task ends."""

from __future__ import annotations

import asyncio
import os
from asyncio.subprocess import Process
from contextlib import AsyncExitStack
from pathlib import Path

from nats.js.errors import KeyNotFoundError

from maestro import topics
from maestro.bus import Bus
from maestro.settings import Settings
from maestro.supervisor import ChildSpec, free_port, settings_env, spawn_child
from tests.e2e.test_fair_dispatch import (
    most_at_once,
    open_parts_beside_orchestrators,
    push_scheduling,
    sleeper,
    spans,
    started,
    submit_all,
    wait_for_ready,
)
from tests.services.orchestrator.support import metric


async def leader(bus: Bus, within: float = 30) -> str:
    """The name of the replica holding the leader lease, once one does."""
    leases = await bus.js.key_value(topics.BUCKET_LEASES)
    async with asyncio.timeout(within):
        while True:
            try:
                return (await leases.get(topics.LEADER_KEY)).value.decode()
            except KeyNotFoundError:
                await asyncio.sleep(0.05)


async def test_two_replicas_hold_a_running_limit_and_the_survivor_leads_after_a_sigkill(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    await push_scheduling(bus, "capped", "{max_running: 2}")
    settings = settings.with_(ack_wait_s=5.0, leader_lease_s=2.0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")} | settings_env(settings)
    replicas = {name: ChildSpec(name, "services.orchestrator", free_port()) for name in ("orch-a", "orch-b")}
    processes: dict[str, Process] = {}
    try:
        for name, spec in replicas.items():
            processes[name] = await spawn_child(spec, env, tmp_path)
        async with AsyncExitStack() as stack:
            client = await open_parts_beside_orchestrators(settings, stack)
            for spec in replicas.values():
                await wait_for_ready(spec)
            first_leader = await leader(bus)

            before = [sleeper("capped", n, 0.2) for n in range(10)]
            # And a hundred quick tasks of a tenant without limits: more events than one pull asks for.
            quick = [sleeper("free", n, 0) for n in range(100)]
            await submit_all(client, [*before, *quick])
            records = await asyncio.gather(*(client.wait(r.id, timeout=60) for r in [*before, *quick]))
            assert {r.state for r in records} == {"succeeded"}
            # The leader keeps up, so it folded every event and the other none (split between replicas, a
            # task's events cost a failed compare-and-set and a second write: orchestrator/folding.py).
            applied = {
                name: await metric(spec.port, "maestro_orchestrator_transitions_total", 'result="applied"')
                for name, spec in replicas.items()
            }
            assert applied.pop(first_leader) >= 110 * 3 and applied == {
                next(n for n in replicas if n != first_leader): 0
            }

            # SIGKILL the leader while the next ten run and wait: the other takes the lead over.
            after = [sleeper("capped", n, 0.4) for n in range(10, 20)]
            await submit_all(client, after)
            async with asyncio.timeout(30):
                while not await started(client, after[0].id):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            processes[first_leader].kill()
            await processes[first_leader].wait()
            records = await asyncio.gather(*(client.wait(r.id, timeout=90) for r in after))
            assert {r.state for r in records} == {"succeeded"}
            assert await leader(bus) == next(name for name in replicas if name != first_leader)
            capped_spans = await spans(client, [r.id for r in [*before, *after]])
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert most_at_once([(s, e) for _, s, e in capped_spans]) == 2
