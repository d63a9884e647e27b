"""`maestro up` as a real process: nats-server is restarted when it dies, Ctrl-C drains in order and
leaves nothing behind, and one budget replica can die without holding up a task."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats.errors
import pytest

from maestro.client import Client, open_client
from maestro.embedded import running_nats_server
from maestro.settings import Settings
from maestro.supervisor import MeshError, free_port, plan_children, port_is_free
from proto.v1 import TERMINAL_STATES, Started, TaskRequest
from tests.e2e.test_cli import MAESTRO, alive, children_of, command_line, env_for


@dataclass
class Up:
    """A running `maestro up`: its process, the banner it printed, where its data is."""

    proc: subprocess.Popen[str]
    banner: list[str]
    data_dir: Path

    def children(self, program: str) -> list[int]:
        """The pids of its children whose command line names `program`."""
        return [pid for pid in children_of(self.proc.pid) if program in command_line(pid)]


@contextmanager
def running_up(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "up", cwd: Path | None = None
) -> Iterator[Up]:
    """`maestro up` on free ports in its own process group (as a shell runs a foreground job), its log in
    tmp_path/<name>.log; Ctrl-C'd on the way out if the test did not stop it, SIGKILLed as a last resort.
    Its data is in tmp_path/data, or with `cwd` in the default .maestro there."""
    data_dir = tmp_path / "data" if cwd is None else cwd / ".maestro"
    environ = {**env_for(data_dir), "MAESTRO_STATE_DIR": str(tmp_path / "state"), **(env or {})}
    if cwd is not None:
        del environ["MAESTRO_DATA_DIR"]
    with open(tmp_path / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [MAESTRO, "up", "--nats-port", "0", "--free-ports", *args],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            process_group=0,
            cwd=cwd,
        )
    try:
        assert proc.stdout is not None
        banner = []
        while line := proc.stdout.readline():
            banner.append(line.rstrip())
            if line.startswith("Ctrl-C"):
                break
        assert any(line.startswith("Maestro is up.") for line in banner), banner
        yield Up(proc, banner, data_dir)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(condition: object, what: str, within: float = 20.0) -> None:
    """Wait until `condition()` is true, failing with `what` after `within` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within:.0f}s: {what}"
        time.sleep(0.05)


def task(command: str, n: int = 0) -> TaskRequest:
    """A tester task running `command`."""
    return TaskRequest(tenant="acme", role="tester", prompt=f"t{n}", commands=[command])


async def wait_started(client: Client, task_id: str, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        async for event in client.watch(task_id):
            if isinstance(event, Started):
                return


async def submit_until_accepted(client: Client, request: TaskRequest, within: float = 20.0) -> None:
    """Submit while the client is still reconnecting: a publish fails until the server is back."""
    async with asyncio.timeout(within):
        while True:
            try:
                await client.submit(request)
                return
            except (nats.errors.Error, TimeoutError):  # not reconnected yet
                await asyncio.sleep(0.1)


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group."""
    members = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(proc.name))
    return members


def descendants(pid: int) -> set[int]:
    found = children_of(pid)
    for child in list(found):
        found |= descendants(child)
    return found


async def test_a_killed_nats_server_comes_back_on_its_port_and_the_mesh_serves_again(tmp_path: Path) -> None:
    with running_up(tmp_path, env={"MAESTRO_ACK_WAIT_S": "3"}) as up:
        url = (up.data_dir / "nats.url").read_text().strip()
        port = url.rsplit(":", 1)[1]
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(open_client(Settings(data_dir=str(up.data_dir))))
            before = [task("sleep 0.5", n) for n in range(4)]
            for request in before:
                await client.submit(request)
            await wait_started(client, before[0].id)

            [server] = up.children("nats-server")
            os.kill(server, signal.SIGKILL)
            wait_until(
                lambda: [p for p in up.children("nats-server") if p != server], "nats-server restarted"
            )
            [again] = up.children("nats-server")
            assert f"--port {port} " in command_line(again) + " "  # the same URL for every client
            assert (up.data_dir / "nats.url").read_text().strip() == url

            after = task("true", 99)
            await submit_until_accepted(client, after)
            # Generous: every service reconnects with backoff, and on a machine busy with the rest of the
            # suite that can take a while (it took more than 20 s once).
            assert (await client.wait(after.id, timeout=60)).state == "succeeded"
            records = await asyncio.gather(*(client.wait(r.id, timeout=60) for r in before))
            assert {r.state for r in records} <= TERMINAL_STATES
        assert '"nats-server exited' in (tmp_path / "up.log").read_text()


async def test_ctrl_c_drains_in_order_and_leaves_nothing_behind(tmp_path: Path) -> None:
    workspaces = tmp_path / "tmp"
    workspaces.mkdir()
    with running_up(tmp_path, "--drain-timeout", "20", env={"TMPDIR": str(workspaces)}) as up:
        async with open_client(Settings(data_dir=str(up.data_dir))) as client:
            running = task("sleep 2")
            await client.submit(running)
            await wait_started(client, running.id)
        wait_until(lambda: any("sleep 2" in command_line(p) for p in descendants(up.proc.pid)), "it runs")
        assert list(workspaces.glob("maestro-ws-*")), "in a workspace"
        spawned = descendants(up.proc.pid)

        # A real Ctrl-C: SIGINT to the whole foreground process group at once.
        started = time.monotonic()
        os.killpg(up.proc.pid, signal.SIGINT)
        code = await asyncio.to_thread(up.proc.wait, 30)
        assert code == 0
        assert time.monotonic() - started < 20
        assert group_members(up.proc.pid) == []
        assert [command_line(pid) for pid in spawned if alive(pid)] == []
        assert list(workspaces.glob("maestro-ws-*")) == []

    # Nothing runs now: the record, read straight from the store, says how the task ended.
    with running_nats_server(up.data_dir / "jetstream", log_file=tmp_path / "after.log") as server:
        async with open_client(Settings(nats_url=server.url)) as client:
            assert (await client.get(running.id)).state == "succeeded"


async def test_a_task_does_not_wait_for_a_killed_budget_replica_to_come_back(tmp_path: Path) -> None:
    with running_up(tmp_path) as up:
        budgets = up.children("services.budget")
        assert len(budgets) == 2
        assert [line.split()[1] for line in up.banner if "budget" in line] == ["budget-1", "budget-2"]
        async with open_client(Settings(data_dir=str(up.data_dir))) as client:
            first = task("true", 0)
            await client.submit(first)
            assert (await client.wait(first.id, timeout=20)).state == "succeeded"

            # Frozen, `maestro up` cannot restart anything: the tasks are served by the replica left.
            os.kill(up.proc.pid, signal.SIGSTOP)
            try:
                os.kill(budgets[0], signal.SIGKILL)
                wait_until(lambda: not alive(budgets[0]), "the replica is dead")
                requests = [task("true", n) for n in range(1, 6)]
                for request in requests:
                    await client.submit(request)
                records = await asyncio.gather(*(client.wait(r.id, timeout=20) for r in requests))
                assert [r.state for r in records] == ["succeeded"] * len(requests)
                assert [pid for pid in up.children("services.budget") if alive(pid)] == [budgets[1]]
            finally:
                os.kill(up.proc.pid, signal.SIGCONT)
        wait_until(lambda: len(up.children("services.budget")) == 2, "the replica restarted")


async def test_a_task_longer_than_the_drain_is_handed_back_and_ends_after_a_restart(tmp_path: Path) -> None:
    workspaces, ran = tmp_path / "tmp", tmp_path / "ran"
    workspaces.mkdir()
    # Long the first time only: after the restart the redelivered task ends at once.
    slow_once = f"if [ -e {ran} ]; then true; else touch {ran}; sleep 60; fi"
    # The command marks its first run outside its workspace, as only an unisolated sandbox lets it.
    env = {"TMPDIR": str(workspaces), "MAESTRO_ACK_WAIT_S": "2", "MAESTRO_SANDBOX": "none"}
    with running_up(tmp_path, env=env) as up:
        async with open_client(Settings(data_dir=str(up.data_dir))) as client:
            handed_back = task(slow_once)
            await client.submit(handed_back)
            await wait_started(client, handed_back.id)
        wait_until(lambda: any("sleep 60" in command_line(p) for p in descendants(up.proc.pid)), "it runs")
        spawned = descendants(up.proc.pid)
        os.killpg(up.proc.pid, signal.SIGINT)
        assert await asyncio.to_thread(up.proc.wait, 30) == 0
        assert group_members(up.proc.pid) == []
        assert [command_line(pid) for pid in spawned if alive(pid)] == []
        assert list(workspaces.glob("maestro-ws-*")) == []

    with running_up(tmp_path, env=env, name="again") as up:
        async with open_client(Settings(data_dir=str(up.data_dir))) as client:
            assert (await client.wait(handed_back.id, timeout=20)).state == "succeeded"


def _time_wait_on(port: int) -> None:
    """Leave TIME-WAIT sockets on `port`: the server side closes first, so its ends linger there."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as client:
                accepted, _ = listener.accept()
                accepted.close()  # the server's end closes first: it is the one left in TIME-WAIT
                assert client.recv(1) == b""


def _time_wait_ports() -> set[int]:
    states: dict[int, set[str]] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        states.setdefault(int(local.split(":")[1], 16), set()).add(state)
    return {port for port, seen in states.items() if "06" in seen}  # 06: TIME_WAIT


def test_a_port_left_in_time_wait_is_free_and_a_listening_one_is_taken() -> None:
    port = free_port()
    _time_wait_on(port)
    assert port in _time_wait_ports()
    assert port_is_free(port)  # as nats-server and aiohttp bind it (SO_REUSEADDR), it can be bound
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not port_is_free(port)
    with socket.socket() as everywhere:
        everywhere.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        everywhere.bind(("0.0.0.0", port))
        everywhere.listen()
        assert not port_is_free(port)


def test_more_orchestrators_run_beside_the_one_that_serves_the_api_each_by_its_own_name() -> None:
    children = plan_children([["planner"]], free_ports=True, api_port=0, orchestrator_replicas=3)
    orchestrators = [c for c in children if c.module == "services.orchestrator"]
    assert [c.name for c in orchestrators] == ["orchestrator", "orchestrator-2", "orchestrator-3"]
    assert len({c.port for c in children}) == len(children)
    with pytest.raises(MeshError, match="orchestrator replicas must be at least 1"):
        plan_children([["planner"]], free_ports=True, api_port=0, orchestrator_replicas=0)


def test_a_second_up_in_the_same_data_dir_is_refused_and_the_first_keeps_its_url(tmp_path: Path) -> None:
    with running_up(tmp_path) as up:
        url = (up.data_dir / "nats.url").read_text()
        second = subprocess.run(
            [MAESTRO, "up", "--nats-port", "0", "--free-ports"],
            env=env_for(up.data_dir),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"maestro: error: {up.data_dir} is in use by another maestro up (pid {up.proc.pid}): "
            "stop it, or give another --data-dir"
        ]
        assert (up.data_dir / "nats.url").read_text() == url
        assert len(up.children("nats-server")) == 1

        # Killed outright, it leaves its URL file behind, but the kernel drops its lock: a new one starts.
        os.killpg(up.proc.pid, signal.SIGKILL)
        up.proc.wait()
    with running_up(tmp_path, name="again") as again:
        assert (again.data_dir / "nats.url").read_text() != url


def cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAESTRO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


async def test_the_cli_finds_a_running_maestro_from_any_directory(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "src" / "deep").mkdir(parents=True)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env["MAESTRO_STATE_DIR"] = str(tmp_path / "state")
    with running_up(tmp_path, cwd=project) as up:
        url = (up.data_dir / "nats.url").read_text().strip()
        async with open_client(Settings(nats_url=url)) as client:
            done = task("true")
            await client.submit(done)
            assert (await client.wait(done.id, timeout=20)).state == "succeeded"
        for cwd in (project, project / "src" / "deep", elsewhere):
            status = cli(cwd, env, "status", done.id)
            assert (status.returncode, status.stderr) == (0, ""), cwd
            assert "succeeded" in status.stdout

        lost = cli(elsewhere, {**env, "MAESTRO_STATE_DIR": str(tmp_path / "other")}, "status", done.id)
        assert lost.returncode == 1
        assert lost.stderr.splitlines() == [
            "maestro: error: no running Maestro: MAESTRO_NATS_URL unset; "
            f"no .maestro/nats.url in {elsewhere} or its parents; none recorded in {tmp_path / 'other'}"
        ]
    gone = cli(elsewhere, env, "status", done.id)
    assert gone.returncode == 1 and "no running Maestro" in gone.stderr


def test_ctrl_c_while_starting_stops_everything_promptly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [MAESTRO, "up", "--nats-port", "0", "--free-ports"],
        env={**env_for(tmp_path / "data"), "MAESTRO_STATE_DIR": str(tmp_path / "state")},
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "up.log", "w"),
        text=True,
        process_group=0,
    )
    spawned: set[int] = set()
    try:
        # Frozen, the orchestrator never answers /readyz: `maestro up` is held in its start-up.
        wait_until(
            lambda: any("services.orchestrator" in command_line(p) for p in children_of(proc.pid)),
            "the orchestrator is started",
        )
        [orchestrator] = [p for p in children_of(proc.pid) if "services.orchestrator" in command_line(p)]
        os.kill(orchestrator, signal.SIGSTOP)
        wait_until(lambda: len(children_of(proc.pid)) >= 6, "every child is started")
        spawned = descendants(proc.pid)

        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert time.monotonic() - started < 15
        assert proc.returncode == 130
        assert "Maestro is up." not in out
        assert [command_line(pid) for pid in spawned if alive(pid)] == []
        assert not (tmp_path / "data" / "nats.url").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in spawned:  # a frozen child outlives a failed test: dying with its parent needs it running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
