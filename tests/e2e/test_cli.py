"""The commands a new user types, as real processes: maestro up, submit --wait, status, watch, smoke."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro.supervisor import plan_children

MAESTRO = str(Path(sys.executable).parent / "maestro")


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env["MAESTRO_DATA_DIR"] = str(data_dir)
    return env


def maestro(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAESTRO, *args], env=env_for(data_dir), capture_output=True, text=True, timeout=timeout, check=False
    )


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(proc.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_up(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C, as a user would; SIGKILL only if it does not stop (its children die with it)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_up(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    """`maestro up` on free ports, returned once it says it is up."""
    return up_with_banner(data_dir, *args)[0]


def up_with_banner(data_dir: Path, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`maestro up` on free ports once it says it is up, and the lines it said."""
    proc = subprocess.Popen(
        [MAESTRO, "up", "--nats-port", "0", "--free-ports", *args],
        env=env_for(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C"):
            break
    assert any(line.startswith("Maestro is up.") for line in lines), lines
    return proc, lines


@pytest.fixture
def maestro_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    data_dir = tmp_path / "data"
    proc = start_up(data_dir)
    try:
        yield proc, data_dir
    finally:
        stop_up(proc)


def test_up_submit_status_watch_and_a_clean_stop(maestro_up: tuple[subprocess.Popen[str], Path]) -> None:
    proc, data_dir = maestro_up
    done = maestro(
        data_dir, "submit", "--tenant", "acme", "--role", "planner", "--wait", "Plan a CLI that counts words"
    )
    assert done.returncode == 0, done.stderr
    task_id, state = done.stdout.split()
    assert state == "succeeded"

    status = maestro(data_dir, "status", task_id)
    assert status.returncode == 0
    assert "succeeded" in status.stdout and "1." in status.stdout  # the planner's numbered steps

    watch = maestro(data_dir, "watch", task_id)
    assert [line.split()[1] for line in watch.stdout.splitlines()] == [
        "task.accepted",
        "task.queued",
        "task.started",
        "task.succeeded",
    ]

    failing = maestro(
        data_dir, "submit", "--tenant", "acme", "--role", "tester", "--command", "exit 3", "--wait", "t"
    )
    assert failing.returncode == 1
    assert failing.stdout.split()[1].startswith("failed")

    children = children_of(proc.pid)
    assert len(children) >= 4  # guard, budget, orchestrator, agents (and the embedded nats-server)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=40) == 0
    assert not [pid for pid in children if alive(pid)]


def test_bad_input_is_one_line_and_a_non_zero_exit(maestro_up: tuple[subprocess.Popen[str], Path]) -> None:
    _, data_dir = maestro_up
    unknown = maestro(data_dir, "status", "no-such-task")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "maestro: error: no task no-such-task"
    unwatched = maestro(data_dir, "watch", "no-such-task")
    assert unwatched.returncode == 1
    assert unwatched.stderr.strip() == "maestro: error: no task no-such-task"

    bad_tenant = maestro(data_dir, "submit", "--tenant", "Not A Tenant", "--role", "planner", "x")
    assert bad_tenant.returncode == 1
    assert len(bad_tenant.stderr.strip().splitlines()) == 1 and "tenant" in bad_tenant.stderr

    no_server = subprocess.run(
        [MAESTRO, "status", "abc"],
        env={**env_for(data_dir / "elsewhere"), "MAESTRO_NATS_URL": "nats://127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert no_server.returncode == 1
    assert "Traceback" not in no_server.stderr
    assert len(no_server.stderr.strip().splitlines()) == 1


def test_smoke_passes_on_a_fresh_mesh(tmp_path: Path) -> None:
    result = maestro(tmp_path, "smoke", timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke passed" in result.stdout
    table = result.stdout.splitlines()
    assert any(line.startswith("credential") and "rejected" in line for line in table)
    assert sum(" succeeded " in line and not line.startswith("workflow") for line in table) == 6
    # The planner fanned out: its six subtasks ran between it and the review.
    assert any(line.startswith("workflow") and "succeeded (8 of 8 steps)" in line for line in table)


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:  # it exited since we listed it
        return ""


def test_a_service_that_dies_is_restarted_and_role_groups_get_their_own_process(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = start_up(data_dir, "--roles", "planner,reviewer", "--roles", "tester")
    try:
        assert proc.stdout is not None
        said = proc.stdout.readline()  # once its agents have announced their roles
        assert said.split(":")[0].split() == ["no", "agent", "scaffolder,", "implementer,", "doc-writer"], (
            said
        )
        children = {pid: command_line(pid) for pid in children_of(proc.pid)}
        agents = [pid for pid, cmd in children.items() if "services.agents" in cmd]
        assert len(agents) == 2
        guard = next(pid for pid, cmd in children.items() if "services.guard" in cmd)
        os.kill(guard, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            restarted = [
                p for p in children_of(proc.pid) if "services.guard" in command_line(p) and p != guard
            ]
            if restarted:
                break
            time.sleep(0.1)
        assert restarted, "the guard was not restarted"
        done = maestro(
            data_dir, "submit", "--tenant", "acme", "--role", "tester", "--command", "true", "--wait", "t"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        unserved = maestro(data_dir, "submit", "--tenant", "acme", "--role", "scaffolder", "x")
        assert unserved.returncode == 0  # accepted; no process serves scaffolders, so it waits queued
        assert "no running agent serves the scaffolder role" in unserved.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
    finally:
        stop_up(proc)


def test_no_process_outlives_maestro_up_killed_by_sigkill(tmp_path: Path) -> None:
    proc = start_up(tmp_path / "data")
    children = children_of(proc.pid)
    assert any("nats-server" in command_line(pid) for pid in children)  # the embedded server too
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [pid for pid in children if alive(pid)]:
        time.sleep(0.1)
    assert not [command_line(pid) for pid in children if alive(pid)]


def test_a_taken_default_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        children = plan_children([["planner"]], free_ports=False, api_port=busy)
    api = next(c for c in children if c.name == "orchestrator")
    assert api.port != busy
