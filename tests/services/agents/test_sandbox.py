"""The sandbox: exit codes, output tails, scrubbed environment, and a timeout that kills the process group."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from proto.v1 import ContextFile
from services.agents.sandbox import Sandbox, WorkspaceError, workspace


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
    assert time.monotonic() - started < 5
    assert result.timed_out and not result.ok and result.exit_code < 0
    group = int(result.output.split()[0])
    async with asyncio.timeout(5):
        while True:  # killed processes may take a moment to be reaped
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.05)


async def test_workspace_holds_the_files_and_is_removed_after() -> None:
    files = [ContextFile(path="a/b.txt", content="hi"), ContextFile(path="c.txt")]
    async with workspace(files) as root:
        assert (root / "a" / "b.txt").read_text() == "hi"
        assert (root / "c.txt").read_text() == ""
    assert not root.exists()


@pytest.mark.parametrize("path", ["/etc/passwd", "../up.txt", "a/../../up.txt"])
async def test_workspace_refuses_paths_outside_it(path: str) -> None:
    with pytest.raises(WorkspaceError):
        async with workspace([ContextFile(path=path)]):
            pass
