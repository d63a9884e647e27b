"""The sandbox's walls, each proved with real processes: a fork bomb, a memory hog, a runaway loop, a write
outside the workspace, a read of the agent's environment, a network connection, a process left behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from maestro.settings import Settings
from services.agents.isolation import IsolationError, Level, candidates
from services.agents.sandbox import Sandbox, workspace

ROOT = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = "/usr/bin/python3"
"""A Python every uid can run (the one the tests run on may live in a private home, as pyenv's does)."""
ISOLATED: list[Level] = ["namespaces", "user"]


async def behind(level: Level, **changes: Any) -> Sandbox:
    """A sandbox at `level` with the settings `changes` (skips the test when the level does not work here)."""
    settings = Settings().with_(sandbox=level, **changes)
    try:
        (isolation,) = candidates(settings)
    except IsolationError as exc:
        pytest.skip(str(exc))
    sandbox = Sandbox(timeout_s=settings.command_timeout_s, isolation=isolation)
    problem = await sandbox.probe()
    if problem is not None:
        pytest.skip(f"the {level} level does not work on this host: {problem}")
    return sandbox


@pytest.fixture
async def root() -> AsyncIterator[Path]:
    """A fresh workspace, as the tester makes one."""
    async with workspace(()) as path:
        yield path


def _needs_system_python() -> None:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"{SYSTEM_PYTHON} is not installed")


def _processes(matching: str) -> list[int]:
    """Live (not zombie) processes whose command line holds `matching`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if matching in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _processes_of(uid: int) -> list[int]:
    """Live processes whose real uid is `uid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(int(entry.name))
    return found


async def _until_none(find: Any, *args: Any, within: float = 10.0) -> None:
    """Until `find(*args)` finds nothing (killed processes may take a moment to die)."""
    async with asyncio.timeout(within):
        while find(*args):  # noqa: ASYNC110 - a process's end is seen in /proc, not as an event
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("level", ISOLATED)
async def test_a_fork_bomb_stops_at_the_process_limit(level: Level, root: Path) -> None:
    # A uid the test knows, so it can count what is left of the bomb afterwards.
    uid = 1_700_000 + os.getpid() % 100_000
    sandbox = await behind(
        level, sandbox_processes=32, sandbox_uid=uid, sandbox_uid_count=1, command_timeout_s=30.0
    )
    started = time.monotonic()
    result = await sandbox.run("bomb() { bomb & bomb & wait; }; bomb", root)
    # Forks past the limit fail, the shells that asked end, and so the bomb collapses, long before its time.
    assert not result.timed_out and time.monotonic() - started < 20
    assert "Cannot fork" in result.output
    await _until_none(_processes_of, uid)
    assert await (await asyncio.create_subprocess_exec("true")).wait() == 0  # this machine still forks


@pytest.mark.parametrize("level", ISOLATED)
async def test_a_memory_hog_gets_no_more_than_its_address_space(level: Level, root: Path) -> None:
    _needs_system_python()
    sandbox = await behind(level, sandbox_memory_bytes=256 << 20)
    result = await sandbox.run(f"{SYSTEM_PYTHON} -c 'b = bytearray(1 << 30); print(\"got it\")'", root)
    assert result.exit_code == 1 and "MemoryError" in result.output and "got it" not in result.output


@pytest.mark.parametrize("level", ISOLATED)
async def test_a_runaway_loop_is_stopped_by_its_cpu_limit(level: Level, root: Path) -> None:
    sandbox = await behind(level, sandbox_cpu_s=1.0, command_timeout_s=30.0)
    result = await sandbox.run("while :; do :; done", root)
    # SIGXCPU at the soft limit (SIGKILL a second later): the wall clock (30 s) never comes into it.
    killed = (signal.SIGXCPU, signal.SIGKILL)
    # As the command's shell's status (128 + the signal) with namespaces, else as the signal itself.
    assert not result.timed_out and result.exit_code in [-n for n in killed] + [128 + n for n in killed]
    assert result.seconds < 15


@pytest.mark.parametrize("level", ISOLATED)
async def test_a_runaway_loop_is_stopped_by_the_wall_clock_with_all_it_started(
    level: Level, root: Path
) -> None:
    marker = f"{1000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**9}"
    sandbox = await behind(level, command_timeout_s=1.0)
    result = await sandbox.run(f"sleep {marker} & setsid sleep {marker} & while :; do :; done", root)
    assert result.timed_out and not result.ok
    await _until_none(_processes, f"sleep {marker}")


@pytest.mark.parametrize("level", ISOLATED)
async def test_a_process_left_in_the_background_does_not_outlive_its_command(
    level: Level, root: Path
) -> None:
    marker = f"{1000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**9}"
    sandbox = await behind(level)
    # Even in a session of its own, out of the command's process group, and with its output closed.
    result = await sandbox.run(f"setsid sleep {marker} >/dev/null 2>&1 </dev/null & echo left it", root)
    assert result.ok and result.output == "left it\n"
    await _until_none(_processes, f"sleep {marker}")


async def test_cancelling_a_namespaced_command_kills_all_it_started(root: Path) -> None:
    marker = f"{1000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**9}"
    sandbox = await behind("namespaces", command_timeout_s=60.0)
    running = asyncio.create_task(sandbox.run(f"setsid sleep {marker} & sleep {marker}", root))
    async with asyncio.timeout(10):
        while len(_processes(f"sleep {marker}")) < 2:  # noqa: ASYNC110 - a process's start is seen in /proc
            await asyncio.sleep(0.02)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=10)
    assert done and running.cancelled()
    await _until_none(_processes, f"sleep {marker}")


async def test_nothing_outside_the_workspace_is_writable_with_namespaces(root: Path) -> None:
    sandbox = await behind("namespaces")
    # A directory every user may write on the host: the read-only system keeps the command out of it.
    open_to_all = Path(tempfile.mkdtemp(dir="/var/tmp"))
    open_to_all.chmod(0o777)
    leak = f"leak-{uuid.uuid4().hex}"
    try:
        result = await sandbox.run(
            f"echo ok > mine && echo x > {open_to_all}/{leak}; echo x > /etc/{leak}; echo x > {ROOT}/{leak};"
            f" echo x > /tmp/{leak} && echo private tmp ok",
            root,
        )
        assert (root / "mine").read_text() == "ok\n"
        # Read-only, or (for a checkout under /tmp, which the command's own /tmp hides) not there at all.
        assert result.output.count("cannot create") == 3, result.output
        assert result.output.count("Read-only file system") >= 2, result.output
        assert "private tmp ok" in result.output  # its own /tmp, gone with it
        for place in (open_to_all, Path("/etc"), ROOT, Path(tempfile.gettempdir())):
            assert not (place / leak).exists()
    finally:
        for path in open_to_all.iterdir():
            path.unlink()
        open_to_all.rmdir()


async def test_nothing_of_the_agent_is_writable_as_the_sandbox_user(root: Path) -> None:
    sandbox = await behind("user")
    leak = f"leak-{uuid.uuid4().hex}"
    result = await sandbox.run(f"echo ok > mine && echo x > /etc/{leak}; echo x > {ROOT}/{leak}", root)
    assert (root / "mine").read_text() == "ok\n"
    assert result.output.count("Permission denied") == 2, result.output
    assert not (Path("/etc") / leak).exists() and not (ROOT / leak).exists()


async def test_a_host_file_linked_into_the_workspace_is_not_handed_to_the_next_command(root: Path) -> None:
    sandbox = await behind("user")
    # A host file that any user may write, beside the workspace (on its filesystem, so it can be linked).
    with tempfile.NamedTemporaryFile(dir=root.parent, prefix="host-") as host:
        Path(host.name).chmod(0o666)
        first = await sandbox.run(f"ln {host.name} linked", root)
        assert first.ok, first.output
        second = await sandbox.run("true", root)
        assert second.ok and os.stat(host.name).st_uid == os.getuid()


@pytest.mark.parametrize("level", ISOLATED)
async def test_a_command_cannot_read_the_agents_credentials(level: Level, root: Path) -> None:
    # What the agent keeps to sign in to NATS (MAESTRO_NATS_CREDS, a seed `maestro nats-config` writes 0600)
    # and the API token `maestro up` writes, where any other uid could reach them but for their mode.
    sandbox = await behind(level)
    secret = f"SUAplanted{uuid.uuid4().hex}"
    kept = root.parent / f"creds-{uuid.uuid4().hex}"
    kept.mkdir(mode=0o755)
    try:
        for name in ("agents.nk", "api.token"):
            (kept / name).write_text(secret)
            (kept / name).chmod(0o600)
        result = await sandbox.run(f"cat {kept}/agents.nk {kept}/api.token; ls {kept}", root)
        assert secret not in result.output
        assert "agents.nk" in result.output or "No such file" in result.output  # it did look
    finally:
        for path in kept.iterdir():
            path.unlink()
        kept.rmdir()


# The agent is a process of its own, started with a secret in its real environment (what /proc shows).
_AGENT = """
import asyncio, json, os, pathlib, sys
from maestro.settings import Settings
from services.agents.isolation import candidates
from services.agents.sandbox import Sandbox, workspace

async def main() -> None:
    (isolation,) = candidates(Settings().with_(sandbox=sys.argv[1]))
    sandbox = Sandbox(timeout_s=20, isolation=isolation, tail_bytes=1 << 20)
    me = os.getpid()
    command = (
        f"echo parent; cat /proc/$PPID/environ; echo agent; cat /proc/{me}/environ;"
        " echo all; cat /proc/[0-9]*/environ; echo env; env"
    )
    async with workspace(()) as root:
        result = await sandbox.run(command, root)
    print(json.dumps({"output": result.output, "agent": me}))

asyncio.run(main())
"""


@pytest.mark.parametrize("level", [*ISOLATED, "none"])
async def test_a_command_cannot_read_the_agent_s_environment(level: Level) -> None:
    await behind(level)  # skips when the level does not work here
    secret = f"planted-{uuid.uuid4().hex}"
    env = {**os.environ, "MAESTRO_PLANTED_SECRET": secret, "OPENAI_API_KEY": secret}
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _AGENT, level, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await agent.communicate()
    assert agent.returncode == 0, err.decode()
    seen = json.loads(out)["output"]
    assert "\nLANG=C.UTF-8\n" in seen  # `env`, the last of the command, ran
    if level == "none":
        assert secret in seen  # what the sandbox was before: the wall is what keeps it out below
    else:
        assert secret not in seen and "MAESTRO_" not in seen


@pytest.mark.parametrize(("level", "reaches"), [("namespaces", False), ("none", True)])
async def test_a_network_connection_fails_with_namespaces(level: Level, reaches: bool, root: Path) -> None:
    _needs_system_python()
    sandbox = await behind(level)
    connected = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5); print('yes')"
        result = await sandbox.run(f'{SYSTEM_PYTHON} -c "{probe}"', root)
    assert ("yes" in result.output) is reaches and connected.is_set() is reaches, result.output
    if not reaches:
        assert "Network is unreachable" in result.output


async def test_commands_of_one_workspace_share_its_files_each_as_its_own_uid(root: Path) -> None:
    sandbox = await behind("namespaces")
    first = await sandbox.run("id -u; echo made > made.txt", root)
    second = await sandbox.run("id -u; cat made.txt; echo more >> made.txt", root)
    assert first.ok and second.ok, (first.output, second.output)
    assert second.output.splitlines()[1] == "made"
    assert (root / "made.txt").read_text() == "made\nmore\n"
    assert os.getuid() != 0 or first.output.split()[0] != "0"


def test_a_namespaced_command_dies_with_the_worker_that_ran_it() -> None:
    marker = f"{1000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**9}"
    script = (
        "import asyncio\n"
        "from maestro.settings import Settings\n"
        "from services.agents.isolation import candidates\n"
        "from services.agents.sandbox import Sandbox, workspace\n"
        "async def main():\n"
        "    (isolation,) = candidates(Settings().with_(sandbox='namespaces'))\n"
        "    async with workspace(()) as root:\n"
        f"        await Sandbox(timeout_s=60, isolation=isolation).run('sleep {marker}', root)\n"
        "asyncio.run(main())\n"
    )
    try:
        candidates(Settings().with_(sandbox="namespaces"))
    except IsolationError as exc:
        pytest.skip(str(exc))
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while not _processes(f"sleep {marker}"):
            assert worker.poll() is None, "the worker ended before its command started"
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        worker.kill()
        worker.wait(10)
        deadline = time.monotonic() + 10
        while _processes(f"sleep {marker}"):
            assert time.monotonic() < deadline, "the command outlived its worker"
            time.sleep(0.02)
    finally:
        if worker.poll() is None:
            worker.kill()
