"""`maestro up`: an embedded JetStream server (unless one is given), provisioning, and every service as a
child process; each child, the server too, is restarted when it dies, and all stop in order on the way out
(maestro/drain.py).

Children run in sessions of their own, so a Ctrl-C at the terminal reaches `maestro up` alone, and only
the supervisor (maestro/children.py) stops them; each still gets SIGTERM when `maestro up` dies, even by
SIGKILL (dies_with_caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from maestro import drain, instances
from maestro.access import nats_config, nats_permissions
from maestro.bus import Bus
from maestro.children import Supervisor, spawn
from maestro.embedded import EmbeddedServerError, listening_url, nats_server_command
from maestro.runtime import open_bus
from maestro.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_NATS_PORT = 4222
DEFAULT_PORTS = {"orchestrator": 8080, "guard": 9101, "budget": 9102, "agents": 9103}
DEFAULT_BUDGET_REPLICAS = 2
"""Budget processes `maestro up` runs: with two, a task's commit never waits for one to come back."""
_MORE_BUDGET_PORTS = 9111
"""Default port of the second budget replica (the next ones count up), clear of the agents' 9103 on."""
_MORE_ORCHESTRATOR_PORTS = 9121
"""Default port of the second orchestrator replica (the next ones count up), clear of the budget's."""
NATS_SERVER = "nats-server"
_READY_TIMEOUT_S = 60.0
_SERVER_STOP_S = 10.0
_INTERRUPTED_STOP_S = 5.0
"""How long the children of a start-up cut short get between SIGTERM and SIGKILL."""


class MeshError(RuntimeError):
    """The mesh could not be brought up; the text says which part and why."""


class Interrupted(MeshError):
    """Told to stop (a signal) before the mesh was up; everything it had started has stopped."""


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
    bus: Bus = field(compare=False, repr=False)
    """The supervisor's own connection, open while the mesh runs."""
    auth_dir: Path | None = None
    """Where the embedded server's users, permissions and credentials are, when it has them (--nats-auth)."""

    @property
    def api_url(self) -> str:
        """The orchestrator's HTTP API."""
        return next(c.url for c in self.children if c.name == "orchestrator")


# Free ports are picked below the kernel's ephemeral range: a port from that range can be taken by any
# outgoing connection between the pick and the moment a child binds it (seen on a busy machine: a budget
# process restarted for a minute on a port a NATS client had taken), and a restarted child binds it again.
_LOWEST_PORT = 10000
_PORT_TRIES = 100


def free_port() -> int:
    """A TCP port nobody listens on right now, outside the range the kernel hands to outgoing connections."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    if ephemeral > _LOWEST_PORT + _PORT_TRIES:
        for _ in range(_PORT_TRIES):
            port = random.randrange(_LOWEST_PORT, ephemeral)
            if port_is_free(port):
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port: nobody listens there (on it or on every interface).

    Bound as nats-server and aiohttp bind (SO_REUSEADDR), so the TIME-WAIT remnants of connections closed in
    the last minute, which a restarted `maestro up` leaves behind, do not count as taken.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def plan_children(
    role_groups: Sequence[Sequence[str]],
    *,
    free_ports: bool,
    api_port: int,
    budget_replicas: int = DEFAULT_BUDGET_REPLICAS,
    orchestrator_replicas: int = 1,
) -> list[ChildSpec]:
    """The processes to run: guard, the budget replicas, the orchestrator replicas (the first serves the API
    on `api_port`), and one agent process per group of roles. Raises MeshError when a count of replicas is not
    positive."""
    for what, replicas in (("budget", budget_replicas), ("orchestrator", orchestrator_replicas)):
        if replicas < 1:
            raise MeshError(f"{what} replicas must be at least 1, not {replicas}")

    def port(default: int) -> int:
        if free_ports:
            return free_port()
        if not port_is_free(default):
            # A service on a taken port would only crash and be restarted until the mesh gave up.
            chosen = free_port()
            log.warning("port %d is taken; using %d instead", default, chosen)
            return chosen
        return default

    children = [ChildSpec("guard", "services.guard", port(DEFAULT_PORTS["guard"]))]
    for n in range(1, budget_replicas + 1):
        name = "budget" if budget_replicas == 1 else f"budget-{n}"
        default = DEFAULT_PORTS["budget"] if n == 1 else _MORE_BUDGET_PORTS + n - 2
        children.append(ChildSpec(name, "services.budget", port(default)))
    children.append(ChildSpec("orchestrator", "services.orchestrator", port(api_port)))
    for n in range(2, orchestrator_replicas + 1):
        default = _MORE_ORCHESTRATOR_PORTS + n - 2
        children.append(ChildSpec(f"orchestrator-{n}", "services.orchestrator", port(default)))
    for i, group in enumerate(role_groups):
        name = "agents" if len(role_groups) == 1 else f"agents-{'-'.join(group)}"
        children.append(
            ChildSpec(
                name, "services.agents", port(DEFAULT_PORTS["agents"] + i), {"MAESTRO_ROLES": ",".join(group)}
            )
        )
    return children


async def spawn_child(spec: ChildSpec, env: dict[str, str], log_dir: Path | None) -> Process:
    """Start one service process."""
    env = {**env, **spec.env, "MAESTRO_HTTP_PORT": str(spec.port), "MAESTRO_WORKER": spec.name}
    log_file = log_dir / f"{spec.name}.log" if log_dir is not None else None
    return await spawn([sys.executable, "-m", spec.module], env=env, log_file=log_file)


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
    budget_replicas: int = DEFAULT_BUDGET_REPLICAS,
    orchestrator_replicas: int = 1,
    drain_s: float | None = None,
    stop: asyncio.Event | None = None,
    nats_auth: bool = False,
) -> AsyncIterator[Mesh]:
    """Bring the whole mesh up for the length of a block, then drain it in order and stop every process it
    started; raises MeshError when it does not come up, Interrupted when `stop` is set before it is up.

    `role_groups` lists the roles of each agent process; by default one process serves settings.roles.
    `drain_s` bounds the drain (default: drain.default_drain_s). A child that refuses its settings sets
    `stop`, and the mesh raises MeshError saying so once it has stopped.

    With `nats_auth`, the embedded server runs `maestro nats-config`'s configuration, written into
    <data_dir>/nats-auth on the first start and kept (tenants added there since are kept too); each child
    connects with its own service's credentials, the supervisor (and the CLI after it) with admin's.
    """
    stop = stop or asyncio.Event()
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(on_refusal=stop.set)
    try:
        async with (
            supervisor,
            _mesh(
                settings,
                supervisor,
                data_dir,
                stop,
                nats_port=nats_port,
                api_port=api_port,
                role_groups=role_groups,
                free_ports=free_ports,
                child_logs=child_logs,
                budget_replicas=budget_replicas,
                orchestrator_replicas=orchestrator_replicas,
                drain_s=drain_s,
                nats_auth=nats_auth,
            ) as mesh,
        ):
            yield mesh
    except Interrupted:
        if supervisor.refusal:
            raise MeshError(supervisor.refusal) from None
        raise
    if supervisor.refusal:
        raise MeshError(supervisor.refusal)


@asynccontextmanager
async def _mesh(
    settings: Settings,
    supervisor: Supervisor,
    data_dir: Path,
    stop: asyncio.Event,
    *,
    nats_port: int,
    api_port: int,
    role_groups: Sequence[Sequence[str]] | None,
    free_ports: bool,
    child_logs: bool,
    budget_replicas: int,
    orchestrator_replicas: int,
    drain_s: float | None,
    nats_auth: bool,
) -> AsyncIterator[Mesh]:
    loop = asyncio.get_running_loop()
    embedded = not settings.nats_url
    auth_dir = _written_auth(data_dir, embedded) if nats_auth else None
    with contextlib.ExitStack() as instance:
        if embedded:
            # One server per JetStream store: a second `maestro up` here is refused before it starts any.
            try:
                instance.enter_context(instances.holding(data_dir))
            except instances.DataDirInUse as exc:
                raise MeshError(str(exc)) from None
        try:
            url = settings.nats_url
            if not url:
                config = auth_dir / nats_config.CONFIG_FILE if auth_dir is not None else None
                url = await _until(stop, _start_server(supervisor, data_dir, nats_port, config))
                state_dir = Path(settings.state_dir) if settings.state_dir else None
                instance.enter_context(instances.announced(data_dir, url, state_dir))
            settings = settings.with_(nats_url=url)
            if auth_dir is not None:
                settings = settings.with_(
                    nats_creds=str(nats_config.seed_file(auth_dir, nats_permissions.ADMIN))
                )
            # Provisions every stream, bucket and store before any service starts; kept open to see the
            # orchestrator's backlog during the drain. Opened under _until, so a Ctrl-C does not wait out
            # the patience of a server that does not answer; the stack closes it whatever happens.
            async with contextlib.AsyncExitStack() as opened:
                bus = await _until(
                    stop, opened.enter_async_context(open_bus(settings, "maestro-up", patience_s=15))
                )
                children = plan_children(
                    role_groups or [settings.roles],
                    free_ports=free_ports,
                    api_port=api_port,
                    budget_replicas=budget_replicas,
                    orchestrator_replicas=orchestrator_replicas,
                )
                if auth_dir is not None:
                    children = [with_credentials(child, auth_dir) for child in children]
                env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
                env.update(settings_env(settings))
                log_dir = None
                if child_logs:
                    log_dir = data_dir / "logs"
                    log_dir.mkdir(exist_ok=True)
                for child in children:
                    launch = functools.partial(spawn_child, child, env, log_dir)
                    log_file = log_dir / f"{child.name}.log" if log_dir is not None else None
                    supervisor.start(child.name, launch, log_file=log_file)
                try:
                    await _until(stop, wait_ready(children))
                except Interrupted:
                    # Nothing was announced yet, so no drain is owed: every child stops at once.
                    names = [c.name for c in children]
                    await supervisor.stop(names, loop.time() + _INTERRUPTED_STOP_S)
                    raise
                try:
                    yield Mesh(url, embedded, tuple(children), data_dir, bus, auth_dir)
                finally:
                    limit = drain.default_drain_s(settings) if drain_s is None else drain_s
                    await _drain(supervisor, bus, children, loop.time() + limit)
        finally:
            if embedded:
                log.info("stopping %s", NATS_SERVER)
                await supervisor.stop([NATS_SERVER], loop.time() + _SERVER_STOP_S)


async def _until(stop: asyncio.Event, work: Coroutine[Any, Any, T]) -> T:
    """The result of `work`, unless `stop` is set first: then `work` is cancelled and Interrupted raised."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done() or stop.is_set():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if stop.is_set():
        raise Interrupted("stopped before the mesh was up")
    return task.result()


async def _drain(supervisor: Supervisor, bus: Bus, children: Sequence[ChildSpec], deadline: float) -> None:
    for stage, names in drain.stages([(c.name, c.module) for c in children]):
        if stage.once_folded and not await drain.events_folded(bus.js, deadline):
            log.warning("the orchestrator has not folded every event by the deadline; it will when it starts")
        closing = [c.name for c in children if c.module in stage.closes]
        if closing:
            log.info("closing intake: %s", ", ".join(closing))
            supervisor.signal(closing, signal.SIGUSR1)
        log.info("stopping %s: %s", stage.what, ", ".join(names))
        await supervisor.stop(names, deadline)


def _written_auth(data_dir: Path, embedded: bool) -> Path:
    """The embedded server's configuration and credentials, written unless there; raises MeshError when the
    server is not embedded or a credentials file there is not one."""
    if not embedded:
        raise MeshError(
            "--nats-auth configures the embedded server; for a server of your own (MAESTRO_NATS_URL), run it "
            "with `maestro nats-config`'s configuration and give each process its MAESTRO_NATS_CREDS"
        )
    auth_dir = data_dir / instances.AUTH_DIR
    try:
        nats_config.write(auth_dir)
    except (OSError, nats_config.CredentialsError) as exc:
        raise MeshError(f"cannot write the NATS credentials in {auth_dir}: {exc}") from None
    return auth_dir


def with_credentials(child: ChildSpec, auth_dir: Path) -> ChildSpec:
    """A child that connects with its own service's NATS credentials (every replica of it with the same)."""
    principal = child.module.rsplit(".", 1)[1]  # services.<name>: the principal of the same name
    creds = nats_config.seed_file(auth_dir, principal)
    return dataclasses.replace(child, env={**child.env, "MAESTRO_NATS_CREDS": str(creds)})


async def _start_server(supervisor: Supervisor, data_dir: Path, nats_port: int, config: Path | None) -> str:
    """Start the embedded server (with `config`, if given) and keep it running: restarted on the same store
    and port, so every client reconnects to the URL it knows. Its URL; raises MeshError when it does not come
    up."""
    port = nats_port
    if port <= 0 or not port_is_free(port):
        if port > 0:
            log.warning("port %d is taken; the embedded nats-server takes a free one", nats_port)
        port = free_port()
    store, log_file = data_dir / "jetstream", data_dir / "nats-server.log"
    store.mkdir(exist_ok=True)

    async def launch(ports_dir: Path | None = None) -> Process:
        command = nats_server_command(store, port=port, host="127.0.0.1", ports_dir=ports_dir, config=config)
        return await spawn(command, env=None, log_file=log_file)

    ports_dir = Path(tempfile.mkdtemp(prefix="maestro-ports-"))
    try:
        first = await launch(ports_dir)
        try:
            url = await listening_url(first, ports_dir)
        except BaseException:  # it did not come up, or the start-up was cut short: it goes
            with contextlib.suppress(ProcessLookupError):
                first.kill()
            await first.wait()
            raise
    except (OSError, EmbeddedServerError) as exc:
        raise MeshError(f"cannot start nats-server: {exc}") from None
    finally:
        shutil.rmtree(ports_dir, ignore_errors=True)
    supervisor.start(NATS_SERVER, launch, first=first)
    return url


def settings_env(settings: Settings) -> dict[str, str]:
    """The MAESTRO_* variables a child process reads `settings` back from (all but its port and name)."""
    env: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if value is None or f.name in ("http_port", "worker"):
            continue
        env[f"MAESTRO_{f.name.upper()}"] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env
