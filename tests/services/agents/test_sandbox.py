"""The sandbox: exit codes, output tails, scrubbed environment, and a timeout that kills the process group."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from proto.v1 import ContextFile
from services.agents.sandbox import Sandbox, WorkspaceError, remove_stale_workspaces, workspace

ROOT = Path(__file__).resolve().parents[3]


async def test_reports_the_exit_code_and_the_output(tmp_path: Path) -> None:
    result = await Sandbox(timeout_s=10).run("echo out; echo err >&2; exit 7", tmp_path)
    assert result.exit_code == 7 and not result.ok and not result.timed_out
    assert result.output == "out\nerr\n"


async def test_runs_in_the_workspace_with_a_scrubbed_environment(tmp_path: Path) -> None:
    os.environ["MAESTRO_SECRET_FOR_TEST"] = "hunter2"
    try:
        result = await Sandbox(timeout_s=10).run("pwd; env", tmp_path)
    finally:
        del os.environ["MAESTRO_SECRET_FOR_TEST"]
    assert result.ok
    assert result.output.splitlines()[0] == str(tmp_path)
    assert "hunter2" not in result.output


async def test_keeps_only_the_tail_of_long_output(tmp_path: Path) -> None:
    result = await Sandbox(timeout_s=10, tail_bytes=100).run("seq 1 100000", tmp_path)
    assert result.ok
    assert len(result.output) <= 100 and result.output.endswith("99999\n100000\n")


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    # The shell prints its pid (= the group id), then leaves a grandchild behind and waits.
    result = await Sandbox(timeout_s=0.5).run("echo $$; sleep 30 & sleep 30", tmp_path)
    killed_at = _ticks_now()
    assert time.monotonic() - started < 5
    assert result.timed_out and not result.ok and result.exit_code < 0
    group = int(result.output.split()[0])
    async with asyncio.timeout(10):
        while _alive_in_group(group, killed_at):  # noqa: ASYNC110 - killed processes may take a moment to die
            await asyncio.sleep(0.05)


async def test_cancelling_a_command_kills_its_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # The shell (whose pid is the group id) leaves a child in the background and waits for it.
    command = f"sleep 60 & echo $$ $! > {pids}.tmp && mv {pids}.tmp {pids}; wait"
    running = asyncio.create_task(Sandbox(timeout_s=60).run(command, tmp_path))
    async with asyncio.timeout(10):
        while not pids.exists():  # noqa: ASYNC110 - the sign that it runs is a file, not an event
            await asyncio.sleep(0.02)
    group, child = (int(word) for word in pids.read_text().split())
    running.cancel()
    # Not after the 60 s the shell would wait (the 2 s a running task's stop takes is test_stop.py's: here
    # the bound leaves room for a machine busy with the rest of the suite).
    done, _ = await asyncio.wait({running}, timeout=10)
    assert done and running.cancelled()
    killed_at = _ticks_now()
    async with asyncio.timeout(10):
        # Killed processes may take a moment to die; a killed grandchild then waits, a zombie, for its new
        # parent (PID 1 here, which may be slow to reap it) and still counts for killpg: only live ones count.
        while _alive_in_group(group, killed_at):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert _state(child) == "Z"  # gone, or a zombie waiting for its new parent to reap it


async def test_workspace_holds_the_files_and_is_removed_after() -> None:
    files = [ContextFile(path="a/b.txt", content="hi"), ContextFile(path="c.txt")]
    async with workspace(files) as root:
        assert (root / "a" / "b.txt").read_text() == "hi"
        assert (root / "c.txt").read_text() == ""
    assert not root.exists()


@pytest.mark.parametrize("path", ["/etc/passwd", "../up.txt", "a/../../up.txt", "a\x00b", ".", "a/.."])
async def test_workspace_refuses_paths_outside_it(path: str) -> None:
    with pytest.raises(ValueError, match="context path"):
        ContextFile(path=path)  # no edge lets one in
    built = msgspec.structs.force_setattr  # what a caller that skips validation could build
    file = ContextFile(path="ok")
    built(file, "path", path)
    with pytest.raises(WorkspaceError):
        async with workspace([file]):
            pass


def test_stale_workspaces_of_dead_workers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])  # a process that has ended: its pid is free
    dead.wait()
    stale = tmp_path / f"maestro-ws-{dead.pid}-abc"
    live = tmp_path / f"maestro-ws-{os.getpid()}-def"
    other = tmp_path / "maestro-ws-notapid"
    for path in (stale, live, other):
        path.mkdir()
    assert remove_stale_workspaces(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other.exists()


def test_a_command_dies_with_the_worker_that_ran_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        "import asyncio, pathlib, sys\n"
        "from services.agents.sandbox import Sandbox\n"
        f"command = 'echo $$ > {pid_file}; exec sleep 60'\n"
        f"asyncio.run(Sandbox(timeout_s=60).run(command, pathlib.Path('{tmp_path}')))\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
    try:
        deadline = time.monotonic() + 10
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        command = int(pid_file.read_text())
        worker.kill()
        worker.wait(10)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{command}").exists() and "Z" not in _state(command):
            assert time.monotonic() < deadline, "the command outlived its worker"
            time.sleep(0.02)
    finally:
        if worker.poll() is None:
            worker.kill()


def _ticks_now() -> int:
    """Now, in the clock ticks since boot that /proc/<pid>/stat gives a process's start time in."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * os.sysconf("SC_CLK_TCK")) + 1


def _alive_in_group(group: int, killed_at: int) -> list[int]:
    """The processes of a process group, started before `killed_at` (ticks), that are not zombies.

    A process started later is not the command's: with pid_max at 32,768 and a suite that forks thousands of
    processes, the group leader's pid can come round again, and a process that takes it and starts a session
    of its own (a sandboxed command of another test, a nats-server) leads a group with the same number.
    """
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().split(") ", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields: state, ppid, pgrp, ...; the start time is the 22nd of stat, the 20th after the name
        if int(fields[2]) == group and fields[0] != "Z" and int(fields[19]) <= killed_at:
            alive.append(int(entry.name))
    return alive


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (FileNotFoundError, IndexError):
        return "Z"


async def test_a_command_cancelled_while_it_starts_leaves_nothing_running(tmp_path: Path) -> None:
    # Cancelled while asyncio was still connecting the new process's pipes, the command's children lived on:
    # asyncio's own clean-up kills the shell alone. Many at once keep the event loop busy enough for a
    # shell to start its child before its run() has its process (one in fourteen did so under a busy suite).
    marker = f"60.{os.getpid()}{time.monotonic_ns() % 1_000_000}"  # sleep 60.<digits>: about a minute

    async def one(n: int) -> None:
        pids = tmp_path / f"pids-{n}"
        command = f"sleep {marker}{n:02d} & echo $$ > {pids}.tmp && mv {pids}.tmp {pids}; wait"
        running = asyncio.create_task(Sandbox(timeout_s=60).run(command, tmp_path))
        async with asyncio.timeout(20):
            while not pids.exists():  # noqa: ASYNC110 - the sign that it runs is a file, not an event
                await asyncio.sleep(0.001)
        running.cancel()
        await asyncio.wait({running}, timeout=10)  # what it leaves running is the question, not how it ends

    await asyncio.gather(*(one(n) for n in range(30)))
    killed_at = _ticks_now()
    async with asyncio.timeout(10):
        while left := _running_with(marker, killed_at):  # noqa: ASYNC110 - killed ones take a moment
            await asyncio.sleep(0.02)
    assert not left


def _running_with(marker: str, killed_at: int) -> list[str]:
    """The live processes started before `killed_at` (ticks) whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (entry / "stat").read_text().split(") ", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError, IndexError):
            continue
        if marker in cmdline and fields[0] != "Z" and int(fields[19]) <= killed_at:
            found.append(cmdline)
    return found
