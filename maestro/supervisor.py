"""`maestro up`: an embedded JetStream server (unless one is given), provisioning, and every service as a
child process that is restarted when it dies and stopped cleanly on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from maestro.embedded import EmbeddedServer, die_with_parent, start_nats_server
from maestro.runtime import URL_FILE, open_bus
from maestro.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_NATS_PORT = 4222
DEFAULT_PORTS = {"orchestrator": 8080, "guard": 9101, "budget": 9102, "agents": 9103}
_STOP_GRACE_S = 20.0
_READY_TIMEOUT_S = 60.0


class MeshError(RuntimeError):
    """The mesh could not be brought up; the text says which part and why."""


@dataclass(frozen=True)
class ChildSpec:
    """One service process: its name, module, HTTP port and extra environment."""

    name: str
    module: str
    port: int
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Where its HTTP endpoints answer."""
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Mesh:
    """A running mesh: where NATS, the API and every service's metrics are."""

    nats_url: str
    embedded: bool
    children: tuple[ChildSpec, ...]
    data_dir: Path

    @property
    def api_url(self) -> str:
        """The orchestrator's HTTP API."""
        return next(c.url for c in self.children if c.name == "orchestrator")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def plan_children(
    role_groups: Sequence[Sequence[str]], *, free_ports: bool, api_port: int
) -> list[ChildSpec]:
    """The processes to run: guard, budget, orchestrator, and one agent process per group of roles."""

    def port(default: int) -> int:
        if free_ports:
            return free_port()
        if not port_is_free(default):
            # A service on a taken port would only crash and be restarted until the mesh gave up.
            chosen = free_port()
            log.warning("port %d is taken; using %d instead", default, chosen)
            return chosen
        return default

    children = [
        ChildSpec("guard", "services.guard", port(DEFAULT_PORTS["guard"])),
        ChildSpec("budget", "services.budget", port(DEFAULT_PORTS["budget"])),
        ChildSpec("orchestrator", "services.orchestrator", port(api_port)),
    ]
    for i, group in enumerate(role_groups):
        name = "agents" if len(role_groups) == 1 else f"agents-{'-'.join(group)}"
        children.append(
            ChildSpec(
                name, "services.agents", port(DEFAULT_PORTS["agents"] + i), {"MAESTRO_ROLES": ",".join(group)}
            )
        )
    return children


class Supervisor:
    """Keeps each child running: restarts one that exits on its own, with backoff; stops all on request."""

    def __init__(self, env: dict[str, str], log_dir: Path | None) -> None:
        self._env = env
        self._log_dir = log_dir
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self.restarts: dict[str, int] = {}

    async def _spawn(self, spec: ChildSpec) -> asyncio.subprocess.Process:
        env = {**self._env, **spec.env, "MAESTRO_HTTP_PORT": str(spec.port), "MAESTRO_WORKER": spec.name}
        out: IO[bytes] | None = None
        if self._log_dir is not None:
            out = open(self._log_dir / f"{spec.name}.log", "ab")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                spec.module,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=die_with_parent,
            )
        finally:
            if out is not None:
                out.close()

    async def keep_running(self, spec: ChildSpec) -> None:
        """Run one child until stop(); restart it whenever it exits on its own."""
        backoff = 0.5
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            proc = await self._spawn(spec)
            self._procs[spec.name] = proc
            started = loop.time()
            code = await proc.wait()
            if self._stopping.is_set():
                return
            if loop.time() - started > 30:
                backoff = 0.5
            self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
            log.warning("%s exited with code %s; restarting in %.1fs", spec.name, code, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, 10.0)

    def pid(self, name: str) -> int | None:
        """The current process id of a child."""
        proc = self._procs.get(name)
        return proc.pid if proc and proc.returncode is None else None

    async def stop(self) -> None:
        """SIGTERM every child, wait for them to drain, SIGKILL what is left."""
        self._stopping.set()
        procs = [p for p in self._procs.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), _STOP_GRACE_S)
        except TimeoutError:
            for proc in procs:
                if proc.returncode is None:
                    log.warning("pid %d did not stop in time; killing it", proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in procs))


async def wait_ready(children: Iterable[ChildSpec], timeout: float = _READY_TIMEOUT_S) -> None:
    """Wait until every child answers /readyz with 200; raises MeshError naming the ones that do not."""
    pending = {c.name: c for c in children}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending:
            for name, child in list(pending.items()):
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{child.url}/readyz") as resp:
                        if resp.status == 200:
                            del pending[name]
            if not pending:
                return
            if loop.time() > deadline:
                raise MeshError(f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))}")
            await asyncio.sleep(0.1)


@asynccontextmanager
async def running_mesh(
    settings: Settings,
    *,
    nats_port: int = DEFAULT_NATS_PORT,
    api_port: int = DEFAULT_PORTS["orchestrator"],
    role_groups: Sequence[Sequence[str]] | None = None,
    free_ports: bool = False,
    child_logs: bool = False,
) -> AsyncIterator[Mesh]:
    """Bring the whole mesh up for the length of a block, then stop every process it started.

    `role_groups` lists the roles of each agent process; by default one process serves settings.roles.
    """
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    server: EmbeddedServer | None = None
    url_file = data_dir / URL_FILE
    if settings.nats_url:
        url = settings.nats_url
    else:
        port = nats_port
        if port > 0 and not port_is_free(port):
            port = -1
            log.warning("port %d is taken; the embedded nats-server takes a free one", nats_port)
        server = start_nats_server(data_dir / "jetstream", port=port, log_file=data_dir / "nats-server.log")
        url = server.url
        url_file.write_text(url + "\n")
    supervisor: Supervisor | None = None
    try:
        settings = settings.with_(nats_url=url)
        async with open_bus(settings, "maestro-up", patience_s=15):
            pass  # provisions every stream, bucket and store before any service starts
        children = plan_children(role_groups or [settings.roles], free_ports=free_ports, api_port=api_port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
        env.update(_settings_env(settings))
        log_dir = None
        if child_logs:
            log_dir = data_dir / "logs"
            log_dir.mkdir(exist_ok=True)
        supervisor = Supervisor(env, log_dir)
        async with asyncio.TaskGroup() as group:
            for child in children:
                group.create_task(supervisor.keep_running(child))
            try:
                await wait_ready(children)
                yield Mesh(url, server is not None, tuple(children), data_dir)
            finally:
                await supervisor.stop()
    finally:
        if server is not None:
            server.stop()
            url_file.unlink(missing_ok=True)


def _settings_env(settings: Settings) -> dict[str, str]:
    # Children read the same settings the supervisor was given, from MAESTRO_* variables.
    env: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None or f.name in ("http_port", "worker"):
            continue
        env[f"MAESTRO_{f.name.upper()}"] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env
