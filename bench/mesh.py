"""The four services as real child processes on one server, with the CPU each of them spent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from maestro import topics
from maestro.bus import Bus
from proto.v1 import GetLedger

SERVICES = ("budget", "guard", "agents", "orchestrator")
# Consumers that exist once a service is pulling: (stream, durable) per service that consumes.
_CONSUMERS = {
    "guard": (topics.STREAM_REQUESTS, topics.DURABLE_GUARD),
    "agents": (topics.STREAM_TASKS, topics.agents_durable("planner")),
    "orchestrator": (topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR),
}
_ROOT = Path(__file__).resolve().parent.parent


class MeshError(RuntimeError):
    """A service exited or did not become ready; the text holds the tail of its log."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a live process has used so far (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Mesh:
    """Running service processes and where their logs go."""

    processes: dict[str, subprocess.Popen[bytes]]
    log_dir: Path

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines a service wrote."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise MeshError naming a service that exited, with its last log lines."""
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                raise MeshError(f"{name} exited with {code}:\n{self.log_tail(name)}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds each service has used so far."""
        return {name: cpu_seconds(p.pid) for name, p in self.processes.items()}

    def stop(self, timeout: float = 30.0) -> dict[str, int]:
        """SIGTERM every service, wait for each (SIGKILL after `timeout`); their exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes


def service_env(nats_url: str, data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a benchmarked service: this server, free ports, no budget limit, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env.update(
        {
            "MAESTRO_NATS_URL": nats_url,
            "MAESTRO_DATA_DIR": str(data_dir),
            "MAESTRO_HTTP_PORT": "0",
            "MAESTRO_DEFAULT_LIMIT_MICRO_USD": str(10**15),
            "MAESTRO_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@contextmanager
def running_mesh(env: Mapping[str, str], log_dir: Path) -> Iterator[Mesh]:
    """Start `python -m services.<name>` for each service; SIGTERM and wait for them all after the block."""
    log_dir.mkdir(parents=True, exist_ok=True)
    mesh = Mesh({}, log_dir)
    try:
        for name in SERVICES:
            with open(log_dir / f"{name}.log", "ab") as log:
                mesh.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    cwd=_ROOT,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        yield mesh
    finally:
        mesh.stop()


async def wait_ready(mesh: Mesh, bus: Bus, tenant: str, timeout: float = 60.0) -> None:
    """Wait until the budget answers and every consuming service has its durable consumer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    waiting: set[str] = set(SERVICES)
    while waiting:
        mesh.check_alive()
        if loop.time() > deadline:
            raise MeshError(f"not ready after {timeout:.0f}s: {', '.join(sorted(waiting))}")
        for name in sorted(waiting):
            try:
                if name == "budget":
                    await bus.request(topics.BUDGET_GET, GetLedger(tenant=tenant))
                else:
                    stream, durable = _CONSUMERS[name]
                    await bus.js.consumer_info(stream, durable)
            except Exception:  # RemoteError, NotFoundError, timeouts: not yet
                continue
            waiting.discard(name)
        if waiting:
            await asyncio.sleep(0.2)
