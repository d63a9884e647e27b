"""The mesh on a three-node JetStream cluster (every stream and bucket with three replicas): the leader of
the task stream is SIGKILLed and restarted, then a node is frozen (SIGSTOP) for ten seconds."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

from chaos.cluster import Cluster, running_cluster
from chaos.drill import Plan, Stage, drill
from chaos.invariants import Report
from maestro import topics

FROZEN_S = 10.0
_STREAM = topics.STREAM_TASKS


@dataclass
class ClusterFaults:
    """The faults of the cluster drill, on one cluster."""

    cluster: Cluster

    async def run(self, stage: Stage) -> None:
        """Kill the task stream's leader and bring it back; later, freeze a node for FROZEN_S."""
        leader = await self.cluster.leader(_STREAM)
        stage.mesh.kills.append(self.cluster.signal(leader, signal.SIGKILL))
        new = await self.cluster.leader(_STREAM, not_=leader)
        stage.notes.append(f"{_STREAM} leader {leader} killed; {new} took over")
        node = self.cluster.nodes[leader]
        if node.process is not None:
            await asyncio.to_thread(node.process.wait)
        self.cluster.start(leader)
        await self.cluster.ready()
        await stage.load.until(stage.load.answered + 60)
        frozen = await self.cluster.leader(topics.STREAM_EVENTS)
        stage.mesh.kills.append(self.cluster.signal(frozen, signal.SIGSTOP))
        try:
            await asyncio.sleep(FROZEN_S)  # the fault is the time it lasts
        finally:
            self.cluster.signal(frozen, signal.SIGCONT)
        stage.notes.append(f"{frozen} (leading {topics.STREAM_EVENTS}) frozen for {FROZEN_S:.0f}s")


async def run_cluster(workdir: Path) -> Report:
    """cluster: 200 tester tasks at 12/s on three clustered nodes, the faults above part-way through."""
    async with running_cluster(workdir / "cluster") as cluster:
        plan = Plan(
            rate=12.0,
            env={"MAESTRO_NATS_URL": cluster.urls, "MAESTRO_STREAM_REPLICAS": "3"},
            fault_at=0.2,
            converge_s=60.0,
        )
        return await drill("cluster", workdir, plan, ClusterFaults(cluster).run)
