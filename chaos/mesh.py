"""A mesh to break: `maestro up` as a real process tree on a fresh data dir and free ports, and the
signals the harness sends into it (every one recorded, so the invariants can tell a kill from a bug)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from chaos import processes
from chaos.facts import Kill
from maestro.access.local_token import TOKEN_FILE
from maestro.embedded import EmbeddedServer, dies_with_caller, start_nats_server
from maestro.settings import Settings
from maestro.supervisor import free_port

_UP_S = 60.0
_STOP_S = 40.0
_READY_POLL_S = 0.1
_BANNER_END = "Ctrl-C stops everything."
_NATS_LINE = re.compile(r"^\s*NATS\s+(\S+)")
_API_LINE = re.compile(r"^\s*API\s+(\S+)/v1/tasks")
_METRICS_LINE = re.compile(r"^\s*metrics\s+(\S+)\s+(\S+)/metrics")
SERVICES = ("guard", "budget", "orchestrator", "agents")

BASE_ENV: Mapping[str, str] = {
    # A priced model, so that every task costs something and the cost check can fail.
    "MAESTRO_PRICING": "offline=3:15",
    "MAESTRO_LOG_LEVEL": "WARNING",
    # Shorter than the default 30 s, so that work held by a killed process comes back within a scenario.
    "MAESTRO_ACK_WAIT_S": "10",
    "MAESTRO_REQUEST_TIMEOUT_S": "3",
    # Each task command proves it ran by a line it appends to a file of the harness, outside its workspace,
    # which the sandbox's isolation (proved on its own, tests/services/agents/test_sandbox_limits.py) forbids.
    "MAESTRO_SANDBOX": "none",
}


class MeshError(RuntimeError):
    """The mesh did not come up, or a process did not come back; the text says which and why."""


def maestro_command() -> list[str]:
    """How to run the `maestro` console script of this environment."""
    script = Path(sys.executable).parent / "maestro"
    if script.exists():
        return [str(script)]
    found = shutil.which("maestro")
    if found is None:
        raise MeshError("the maestro command is not installed (make setup)")
    return [found]


def mesh_env(root: Path, overrides: Mapping[str, str]) -> dict[str, str]:
    """The MAESTRO_* settings of a chaos mesh in `root`: the base ones, then the scenario's."""
    return {**BASE_ENV, "MAESTRO_DATA_DIR": str(root / "mesh"), **overrides}


@dataclass(frozen=True)
class Member:
    """A process of the mesh: its name, the service it runs, its pid, and whether `maestro up` restarts it."""

    name: str
    service: str
    pid: int
    supervised: bool = False


@dataclass
class ChaosMesh:
    """A running `maestro up` and the processes the harness started beside it."""

    root: Path
    env: dict[str, str]
    """The MAESTRO_* settings every process of the mesh runs with."""
    up: subprocess.Popen[bytes]
    nats_url: str
    api_url: str
    urls: dict[str, str]
    """Each supervised service's HTTP base URL."""
    kills: list[Kill] = field(default_factory=list)
    extras: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    servers: list[EmbeddedServer] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    """Every pid the mesh ever had, so none is left behind at the end."""

    def api_headers(self) -> dict[str, str]:
        """What the harness sends with each call to the API: JSON, and the admin token `maestro up` made."""
        token = (Path(self.env["MAESTRO_DATA_DIR"]) / TOKEN_FILE).read_text().strip()
        return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def settings(self) -> Settings:
        """Settings for the harness's own client: the mesh's, pointing at its server."""
        return Settings.from_env(self.env).with_(nats_url=self.nats_url, worker="chaos-harness")

    def members(self) -> list[Member]:
        """The live processes of the mesh: `maestro up`'s children by their child name (`guard`,
        `budget-1`, `nats-server`), and the processes the harness started beside them."""
        everything = processes.snapshot()
        found = [Member("maestro-up", "maestro", self.up.pid)] if self.up.poll() is None else []
        for proc in processes.descendants(self.up.pid, everything):
            if proc.service is None or proc.ppid != self.up.pid:
                # A task's command, say; or a service's child caught between fork and exec, which still
                # shows its parent's command line (taken for a restarted service, it failed the poison
                # scenario once): the supervised services are `maestro up`'s own children.
                continue
            name = processes.environ(proc.pid, "MAESTRO_WORKER") or proc.service
            found.append(Member(name, proc.service, proc.pid, supervised=True))
        extras = {p.pid: name for name, p in self.extras.items() if p.poll() is None}
        found += [Member(extras[p.pid], p.service or "", p.pid) for p in everything if p.pid in extras]
        found += [
            Member("nats-server", "nats-server", s.process.pid)
            for s in self.servers
            if s.process.poll() is None
        ]
        self.seen |= {m.pid for m in found}
        return found

    def pid(self, name: str) -> int | None:
        """The pid of the live process of that name (a child's name or an extra's), if there is one."""
        return next((m.pid for m in self.members() if m.name == name), None)

    async def busy(self, service: str, commands: int, *, within: float = 15.0) -> bool:
        """Wait until the processes of `service` run at least `commands` task commands between them (a
        kill then lands mid-task); whether they did within `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            everything = processes.snapshot()
            running = sum(
                1
                for m in self.members()
                if m.service == service
                for p in processes.descendants(m.pid, everything)
                if p.argv[1:2] == ("-c",) and os.path.basename(p.argv[0]) == "sh"  # the sandbox's shell
            )
            if running >= commands:
                return True
            await asyncio.sleep(_READY_POLL_S / 5)
        return False

    def kill(self, target: str, sig: signal.Signals = signal.SIGKILL) -> list[Kill]:
        """Send `sig` to the process named `target`, or to every supervised process of the service `target`
        (`budget`: each replica); raises MeshError when there is none."""
        members = self.members()
        hit = [m for m in members if m.name == target] or [
            m for m in members if m.supervised and m.service == target
        ]
        if not hit:
            raise MeshError(f"{target} is not running")
        kills = []
        for member in hit:
            os.kill(member.pid, sig)
            if sig == signal.SIGKILL:
                _until_dead(member.pid)
            # When it was dead, not when the signal left: a command of an agent killed at this moment may
            # stamp its effect between the two, and that is the agent's last act, not an orphan's.
            kill = Kill(name=member.name, pid=member.pid, at=time.time(), signal=sig.name)
            self.kills.append(kill)
            kills.append(kill)
        return kills

    async def back(self, kills: list[Kill], *, within: float = 30.0) -> None:
        """Wait until each killed process runs again under its name (and answers /readyz); raises
        MeshError naming one that does not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for kill in kills:
            while True:
                pid = self.pid(kill.name)
                if pid is not None and pid != kill.pid:
                    break
                if loop.time() > deadline:
                    raise MeshError(f"{kill.name} did not come back within {within:.0f}s")
                await asyncio.sleep(_READY_POLL_S)
            url = self.urls.get(kill.name)
            if url is not None:
                await _ready(url, max(deadline - loop.time(), 1.0))

    async def nats_back(self, kills: list[Kill], *, within: float = 10.0) -> str | None:
        """After nats-server died: wait for `maestro up` to restart it; else restart it here, same store and
        port, and say so (a note that is a violation: issue 7, finding 12)."""
        try:
            await self.back(kills, within=within)
            return None
        except MeshError:
            pass
        port = int(self.nats_url.rsplit(":", 1)[1])
        server = await asyncio.to_thread(
            start_nats_server,
            Path(self.env["MAESTRO_DATA_DIR"]) / "jetstream",
            port=port,
            log_file=self.root / "nats-restarted.log",
        )
        self.servers.append(server)
        return (
            f"maestro up did not restart nats-server within {within:.0f}s; "
            "the harness restarted it on the same store and port"
        )

    async def start_extra(self, name: str, module: str, env: Mapping[str, str] | None = None) -> int:
        """Start `python -m module` beside the mesh (a second budget replica, say); waits for /readyz."""
        port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
        full.update(self.env)
        full.update(
            {"MAESTRO_NATS_URL": self.nats_url, "MAESTRO_HTTP_PORT": str(port), "MAESTRO_WORKER": name}
        )
        full.update(env or {})
        proc = spawn([sys.executable, "-m", module], full, self.root / f"{name}.log")
        self.extras[name] = proc
        self.urls[name] = f"http://127.0.0.1:{port}"
        await _ready(self.urls[name], _UP_S)
        return proc.pid

    async def restart_extra(self, name: str, module: str) -> int:
        """Start an extra again after it was killed (nobody supervises it)."""
        old = self.extras.pop(name)
        await asyncio.to_thread(old.wait)
        return await self.start_extra(name, module)

    @property
    def logs(self) -> Path:
        """Where `maestro up` and every child of it log (stderr)."""
        return self.root / "up.err"

    async def stop(self) -> None:
        """Ctrl-C for `maestro up` (SIGINT); SIGKILL whatever of the mesh is left after the grace time."""
        self.members()
        if self.up.poll() is None:
            self.up.send_signal(signal.SIGINT)
        for proc in self.extras.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.up.wait, _STOP_S)
        for proc in [self.up, *self.extras.values()]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 5)
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        for server in self.servers:
            await asyncio.to_thread(server.stop)
        # Anything of the mesh still alive now (an orphaned command, a server nobody stopped) is ended.
        for pid in sorted(self.seen):
            if processes.alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def spawn(
    argv: list[str], env: Mapping[str, str], out: Path, err: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a process that dies with the harness, its output appended to `out` (and `err`)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "ab") as stdout, open(err or os.devnull, "ab") as stderr:
        return subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr if err is not None else subprocess.STDOUT,
            preexec_fn=dies_with_caller(),
        )


async def _ready(url: str, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{url}/readyz") as resp:
                    if resp.status == 200:
                        return
            if loop.time() > deadline:
                raise MeshError(f"{url} not ready within {within:.0f}s")
            await asyncio.sleep(_READY_POLL_S)


def _banner(path: Path) -> tuple[str, str, dict[str, str]] | None:
    text = path.read_text(errors="replace") if path.exists() else ""
    if _BANNER_END not in text:
        return None
    nats = api = ""
    urls: dict[str, str] = {}
    for line in text.splitlines():
        if m := _NATS_LINE.match(line):
            nats = m.group(1)
        elif m := _API_LINE.match(line):
            api = m.group(1)
        elif m := _METRICS_LINE.match(line):
            urls[m.group(1)] = m.group(2)
    return nats, api, urls


@asynccontextmanager
async def running_mesh(
    root: Path, overrides: Mapping[str, str] | None = None, up_args: tuple[str, ...] = ()
) -> AsyncIterator[ChaosMesh]:
    """`maestro up --nats-port 0 --free-ports [up_args]` in `root` for the length of a block; raises
    MeshError.

    With MAESTRO_NATS_URL among the overrides, the mesh uses that server (a cluster) instead of its own.
    """
    env = mesh_env(root, overrides or {})
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    full.update(env)
    out, err = root / "up.out", root / "up.err"
    up = spawn([*maestro_command(), "up", "--nats-port", "0", "--free-ports", *up_args], full, out, err)
    mesh: ChaosMesh | None = None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _UP_S
        while (banner := _banner(out)) is None:
            if up.poll() is not None or loop.time() > deadline:
                tail = "\n".join(err.read_text(errors="replace").splitlines()[-15:])
                raise MeshError(f"maestro up did not come up (exit {up.poll()}):\n{tail}")
            await asyncio.sleep(_READY_POLL_S)
        nats, api, urls = banner
        mesh = ChaosMesh(root=root, env=env, up=up, nats_url=nats, api_url=api, urls=urls)
        mesh.members()
        yield mesh
    finally:
        if mesh is None:
            mesh = ChaosMesh(root=root, env=env, up=up, nats_url="", api_url="", urls={})
        await mesh.stop()


def _until_dead(pid: int, within: float = 2.0) -> None:
    """Until a SIGKILLed process has exited (gone, or a zombie its parent has not reaped yet)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return
        if stat.rsplit(") ", 1)[-1].startswith(("Z", "X")):
            return
        time.sleep(0.001)
