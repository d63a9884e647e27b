"""Run a task's shell commands in a throwaway workspace; a timeout or a cancel kills their process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from maestro.children import alive
from maestro.embedded import dies_with_caller
from proto.v1 import ContextFile
from proto.v1.tasks import workspace_path_problem

_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
_PREFIX = "maestro-ws-"


def _default_path() -> str:
    # The interpreter's own bin dir first, so `python` and tools installed beside it resolve in commands.
    return f"{Path(sys.executable).parent}:{_SYSTEM_PATH}"


class WorkspaceError(ValueError):
    """A context file's path is absolute or climbs out of the workspace."""


@dataclass(frozen=True)
class CommandResult:
    """How one command ended: its exit code (negative: killed by that signal) and the tail of its output."""

    command: str
    exit_code: int
    output: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """Whether the command exited 0 in time."""
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True)
class Sandbox:
    """Runs shell commands with a timeout, a scrubbed environment and bounded output capture."""

    timeout_s: float
    tail_bytes: int = 4096
    path: str = field(default_factory=_default_path)

    async def run(self, command: str, cwd: Path) -> CommandResult:
        """Run `command` with `sh` in `cwd`; stdout and stderr are merged and only their tail is kept.

        Cancelled (the task was stopped), it kills everything the command started before it re-raises.
        """
        started = time.perf_counter()
        process = await asyncio.create_subprocess_shell(
            command,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout can kill everything it started
            preexec_fn=dies_with_caller(),  # and it dies with the agent, even one that is SIGKILLed
            env={"PATH": self.path, "HOME": str(cwd), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
        )
        tail = bytearray()
        timed_out = False
        try:
            async with asyncio.timeout(self.timeout_s):
                assert process.stdout is not None
                while chunk := await process.stdout.read(65536):
                    tail += chunk
                    if len(tail) > self.tail_bytes:
                        del tail[: len(tail) - self.tail_bytes]
                await process.wait()
        except TimeoutError:
            timed_out = True
        finally:
            # Whatever happened (done, timed out, cancelled), leave nothing of the command running.
            _kill_group(process.pid)
            if process.returncode is None:
                await process.wait()
        assert process.returncode is not None
        return CommandResult(
            command=command,
            exit_code=process.returncode,
            output=tail.decode("utf-8", errors="replace"),
            seconds=time.perf_counter() - started,
            timed_out=timed_out,
        )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _relative(path: str) -> PurePosixPath:
    # A ContextFile cannot hold such a path (the type refuses it at every edge); checked again where files
    # are written, for whatever builds one some other way.
    if workspace_path_problem(path) is not None:
        raise WorkspaceError(f"context file path must stay inside the workspace: {path!r}")
    return PurePosixPath(path)


def _write(root: Path, files: Iterable[ContextFile]) -> None:
    for file in files:
        target = root.joinpath(*_relative(file.path).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.content, encoding="utf-8")


@asynccontextmanager
async def workspace(files: Iterable[ContextFile]) -> AsyncIterator[Path]:
    """A fresh temp directory holding `files`, removed afterwards; raises WorkspaceError on a bad path.

    Its name carries this process's id, so a worker that was killed before it could remove its
    workspaces leaves them to remove_stale_workspaces().
    """
    prefix = f"{_PREFIX}{os.getpid()}-"
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix))
    try:
        await asyncio.to_thread(_write, root, list(files))
        yield root
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)


def remove_stale_workspaces(directory: Path | None = None) -> list[Path]:
    """Remove the workspaces of worker processes that no longer run (killed mid-task); the ones removed."""
    removed = []
    for path in Path(directory or tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        owner = path.name[len(_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed
