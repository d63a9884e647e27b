"""SIGKILL under load: each service alone, all of them at once, nats-server, and the orchestrator replica
that leads."""

from __future__ import annotations

from pathlib import Path

from chaos.drill import Fault, Plan, Stage, drill
from chaos.invariants import Report
from chaos.mesh import SERVICES
from maestro import topics

MID_TASK = 3
"""Task commands the agents must be running when they are killed."""


def killing(*names: str) -> Fault:
    """SIGKILL every process of the named services together (each budget replica too), then wait until
    `maestro up` has each one back."""

    async def fault(stage: Stage) -> None:
        if "agents" in names and not await stage.mesh.busy("agents", MID_TASK):
            stage.notes.append(f"the agents never ran {MID_TASK} commands at once; killed them anyway")
        kills = [kill for name in names for kill in stage.mesh.kill(name)]
        await stage.mesh.back(kills)

    return fault


async def kill_nats(stage: Stage) -> None:
    """SIGKILL nats-server; `maestro up` should bring it back on the same store and port."""
    note = await stage.mesh.nats_back(stage.mesh.kill("nats-server"))
    if note is not None:
        stage.violations.append(f"{note} (issue 7 finding 12)")


def service(name: str) -> Fault:
    """The fault of scenario kill-<name>."""
    return killing(*(SERVICES if name == "all" else (name,)))


async def run_kill(name: str, workdir: Path) -> Report:
    """kill-<service> and kill-all: 200 tester tasks at 25/s, the kill after 40% of them."""
    return await drill(f"kill-{name}", workdir, Plan(), service(name))


async def kill_leader(stage: Stage) -> None:
    """SIGKILL the orchestrator replica holding the leader lease (it runs the dispatcher): another takes the
    lead over after one lease, and `maestro up` brings the killed one back."""
    leases = await stage.client.bus.js.key_value(topics.BUCKET_LEASES)
    leader = ((await leases.get(topics.LEADER_KEY)).value or b"").decode()
    stage.notes.append(f"killed {leader}, the leader")
    await stage.mesh.back(stage.mesh.kill(leader))


async def run_kill_leader(workdir: Path) -> Report:
    """kill-leader: two orchestrators, 200 tester tasks at 25/s, the leader SIGKILLed after 40% of them."""
    return await drill("kill-leader", workdir, Plan(up_args=("--orchestrator-replicas", "2")), kill_leader)


async def run_kill_nats(workdir: Path) -> Report:
    """kill-nats: 200 tester tasks at 25/s, nats-server SIGKILLed after 40% of them."""
    return await drill("kill-nats", workdir, Plan(), kill_nats)
