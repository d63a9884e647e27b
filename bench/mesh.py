"""The mesh under test, started by `maestro up`'s own launcher (maestro.supervisor.running_mesh) on the
benchmark's server with one process per service, and the CPU each of its processes spends.

running_mesh does not hand out its children's process ids; each child carries the name it was started
under in MAESTRO_WORKER (supervisor.spawn_child), so they are read from /proc as this process's children.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import nats.errors
from nats.js.errors import NotFoundError

from maestro import supervisor, topics
from maestro.bus import Bus
from maestro.embedded import EmbeddedServer
from maestro.settings import Settings

NATS_SERVER = "nats-server"
HARNESS = "harness"
NO_LIMIT_MICRO_USD = 10**15
"""The tenants' budget limit in a benchmark: far above anything a run spends."""
# Consumers that exist once a service is pulling: (stream, durable).
_CONSUMERS = (
    (topics.STREAM_REQUESTS, topics.DURABLE_GUARD),
    (topics.STREAM_TASKS, topics.agents_durable("tester")),  # bench/pipeline.ROLE
    (topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR),
    (topics.STREAM_WORKFLOWS, topics.DURABLE_ORCHESTRATOR_WORKFLOWS),
)
_WORKER = b"MAESTRO_WORKER="
_POLL_S = 0.1


class MeshError(RuntimeError):
    """A service exited, was restarted or did not start serving; the text says which."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a live process has used so far (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def harness_cpu_seconds() -> float:
    """CPU seconds this process (the harness) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def service_env(nats_url: str, data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a service started on its own (bench/budget.py's replicas): this server, no
    budget limit to reach, quiet logs, then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(
        {
            "MAESTRO_NATS_URL": nats_url,
            "MAESTRO_DATA_DIR": str(data_dir),
            "MAESTRO_DEFAULT_LIMIT_MICRO_USD": str(NO_LIMIT_MICRO_USD),
            "MAESTRO_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def children_by_worker() -> dict[str, int]:
    """This process's children that name themselves in MAESTRO_WORKER: name -> process id."""
    me = os.getpid()
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent != me:
                continue
            environ = (entry / "environ").read_bytes()
        except (OSError, ValueError, IndexError):  # it exited meanwhile
            continue
        for variable in environ.split(b"\0"):
            if variable.startswith(_WORKER):
                found[variable[len(_WORKER) :].decode()] = int(entry.name)
    return found


@dataclass(frozen=True)
class BenchMesh:
    """A running mesh: its service processes by name, the server it runs on, and where its logs go."""

    pids: Mapping[str, int]
    server: EmbeddedServer
    log_dir: Path

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines a service wrote."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise MeshError naming a service that exited or was restarted since the mesh came up (its CPU
        figures would then count a fresh process), with its last log lines."""
        now = children_by_worker()
        for name, pid in self.pids.items():
            if now.get(name) != pid:
                raise MeshError(f"{name} (pid {pid}) exited or was restarted:\n{self.log_tail(name)}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds each service, the server and this harness have used so far."""
        return {
            **{name: cpu_seconds(pid) for name, pid in self.pids.items()},
            NATS_SERVER: cpu_seconds(self.server.process.pid),
            HARNESS: harness_cpu_seconds(),
        }


class CpuMeter:
    """CPU seconds spent by each process of a mesh (and the harness) from its creation to spent()."""

    def __init__(self, mesh: BenchMesh) -> None:
        self._mesh = mesh
        self._start = mesh.cpu()

    def spent(self) -> dict[str, float]:
        """CPU seconds per process since the meter was made."""
        now = self._mesh.cpu()
        return {name: now[name] - self._start.get(name, 0.0) for name in now}


def services_cpu(cpu_s: Mapping[str, float]) -> float:
    """The services' CPU seconds alone: without the server and the harness."""
    return sum(sec for name, sec in cpu_s.items() if name not in (NATS_SERVER, HARNESS))


async def wait_serving(mesh: BenchMesh, bus: Bus, timeout: float = 60.0) -> None:
    """Wait until a budget answers and every consuming service has its durable consumer (a ready
    service has only connected); raises MeshError when one exits or `timeout` passes first."""
    try:
        async with asyncio.timeout(timeout):
            await bus.discovery.instances(topics.BUDGET_SERVICE, 1, within=timeout)
            for stream, durable in _CONSUMERS:
                while True:
                    mesh.check_alive()
                    with contextlib.suppress(NotFoundError, nats.errors.TimeoutError):
                        await bus.js.consumer_info(stream, durable)
                        break
                    await asyncio.sleep(_POLL_S)  # nothing to subscribe to: a consumer's creation
    except TimeoutError:
        raise MeshError(f"the mesh does not serve after {timeout:.0f}s") from None


@contextlib.asynccontextmanager
async def running(
    server: EmbeddedServer,
    data_dir: Path,
    *,
    fair_dispatch: bool = True,
    dispatch_ahead: int = Settings.dispatch_ahead,
    orchestrator_replicas: int = 1,
) -> AsyncIterator[BenchMesh]:
    """The four services on `server` for the length of a block, started, drained and stopped by
    supervisor.running_mesh; a failure inside the block prints every service's last log lines. They run with
    the settings a user gets by default (fair dispatch, MAESTRO_DISPATCH_AHEAD) unless a benchmark compares
    other ones."""
    settings = Settings(
        nats_url=server.url,
        data_dir=str(data_dir),
        default_limit_micro_usd=NO_LIMIT_MICRO_USD,
        log_level="WARNING",
        fair_dispatch=fair_dispatch,
        dispatch_ahead=dispatch_ahead,
    )
    # Its warnings are a child restarted or killed at the stop: worth seeing beside the figures.
    for name in ("maestro.supervisor", "maestro.children"):
        logging.getLogger(name).setLevel(logging.WARNING)
    async with supervisor.running_mesh(
        settings,
        free_ports=True,
        child_logs=True,
        budget_replicas=1,
        orchestrator_replicas=orchestrator_replicas,
    ) as running_mesh:
        found = children_by_worker()
        names = [child.name for child in running_mesh.children]
        missing = [name for name in names if name not in found]
        if missing:
            raise MeshError(f"no process found for {', '.join(missing)}")
        mesh = BenchMesh({name: found[name] for name in names}, server, data_dir / "logs")
        try:
            yield mesh
        except BaseException:
            for name in names:
                tail = mesh.log_tail(name, 10)
                if tail:
                    print(f"--- {name} log tail ---\n{tail}")
            raise


async def idle_cpu(mesh: BenchMesh, seconds: float) -> dict[str, float]:
    """CPU seconds each process spends over `seconds` in which nobody submits anything."""
    cpu = CpuMeter(mesh)
    await asyncio.sleep(seconds)  # the measuring window itself: nothing is awaited but time
    return cpu.spent()
