"""Run a task's shell commands in a throwaway workspace behind an isolation level (isolation.py); a timeout
or a cancel kills everything they started."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from maestro.children import alive
from maestro.settings import Settings
from proto.v1 import ContextFile
from proto.v1.tasks import workspace_path_problem
from services.agents.isolation import Isolation, IsolationError, Level, UidPool, candidates

log = logging.getLogger(__name__)

_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
_PREFIX = "maestro-ws-"
_PROBE_TIMEOUT_S = 10.0


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
    """Runs shell commands behind an isolation level, with a timeout, resource limits, a scrubbed environment
    and bounded output capture."""

    timeout_s: float
    isolation: Isolation = field(default_factory=lambda: Isolation(level="none"))
    """How commands are kept from the host; open_sandbox() picks the best that works. The default, for tests
    and examples only, runs them as the caller's own user with no limits."""
    tail_bytes: int = 4096
    path: str = field(default_factory=_default_path)
    uids: UidPool | None = None
    """The uids commands run as (one each while they run); None: the range isolation.uids names."""

    def __post_init__(self) -> None:
        if self.uids is None and self.isolation.uids is not None:
            object.__setattr__(self, "uids", UidPool(*self.isolation.uids))

    @property
    def level(self) -> Level:
        """The isolation level commands run at."""
        return self.isolation.level

    async def run(self, command: str, cwd: Path) -> CommandResult:
        """Run `command` with `sh` in `cwd`; stdout and stderr are merged and only their tail is kept.

        Cancelled (the task was stopped), it kills everything the command started before it re-raises.
        """
        uid, alone = self.uids.take() if self.uids is not None else (None, False)
        new_root: Path | None = None
        try:
            if uid is not None:
                await asyncio.to_thread(_hand_over, cwd, uid)
            if self.isolation.level == "namespaces":
                prefix = f"{_PREFIX}{os.getpid()}-root-"
                new_root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix))
            # At the user level, processes that left the command's process group (setsid) are still its uid's.
            sweep = uid if alone and self.isolation.level == "user" else None
            return await self._run(command, cwd, uid, new_root, sweep)
        finally:
            if uid is not None and self.uids is not None and alone:
                self.uids.give_back(uid)
            if new_root is not None:
                await asyncio.to_thread(shutil.rmtree, new_root, True)

    async def _run(
        self, command: str, cwd: Path, uid: int | None, new_root: Path | None, sweep: int | None
    ) -> CommandResult:
        started = time.perf_counter()
        starting = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *self.isolation.argv(command, cwd, uid, new_root),
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group, so a timeout can kill everything it started; it dies with the agent
                # (even one that is SIGKILLed) and runs within the limits.
                start_new_session=True,
                preexec_fn=self.isolation.preexec(),
                env={
                    "PATH": self.path,
                    "HOME": str(cwd),
                    "LANG": "C.UTF-8",
                    "TMPDIR": "/tmp",
                    "PYTHONDONTWRITEBYTECODE": "1",
                },
            )
        )
        process: Process | None = None
        tail = bytearray()
        timed_out = False
        try:
            # Shielded: cancelled while asyncio still connects the new process's pipes, the command may have
            # started children already, and asyncio's own clean-up would kill the shell alone.
            process = await asyncio.shield(starting)
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
            if process is None:
                process = await _once_started(starting)
            # Whatever happened (done, timed out, cancelled), leave nothing of the command running: in a PID
            # namespace, killing the group's unshare takes its PID 1 and so the whole namespace with it.
            if process is not None:
                _kill_group(process.pid)
            if sweep is not None:
                # Before the wait, which lasts as long as anything holds the output pipe open.
                await _kill_uid(self.isolation, sweep)
            if process is not None and process.returncode is None:
                await process.wait()
        assert process is not None and process.returncode is not None
        return CommandResult(
            command=command,
            exit_code=process.returncode,
            output=tail.decode("utf-8", errors="replace"),
            seconds=time.perf_counter() - started,
            timed_out=timed_out,
        )

    async def probe(self) -> str | None:
        """Run `true` once at this level in a workspace of its own: None if it works, else why not."""
        probing = dataclasses.replace(self, timeout_s=min(self.timeout_s, _PROBE_TIMEOUT_S))
        async with workspace(()) as root:
            try:
                result = await probing.run("true", root)
            except OSError as exc:  # the first program could not even start (a limit too low for it, say)
                return f"could not start: {exc}"
        if result.ok:
            return None
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        last = result.output.strip().splitlines()[-1:]
        return f"{why}: {last[0]}" if last else why


async def open_sandbox(settings: Settings, *, runs_untrusted: bool) -> Sandbox:
    """The sandbox at the best isolation level MAESTRO_SANDBOX allows that really works on this host (each is
    tried once, running `true`).

    Raises IsolationError when the level named does not work, or when `runs_untrusted` (the worker serves
    the tester) and no isolation works while MAESTRO_SANDBOX is not `none`.
    """
    tried: list[str] = []
    for isolation in candidates(settings):
        sandbox = Sandbox(timeout_s=settings.command_timeout_s, isolation=isolation)
        if isolation.level == "none" and runs_untrusted and settings.sandbox != "none":
            raise IsolationError(
                "no isolation works on this host ("
                + "; ".join(tried or ["none found"])
                + "): set MAESTRO_SANDBOX=none to run tester commands as the agent's own user anyway"
            )
        problem = await sandbox.probe()
        if problem is None:
            log.info("sandbox isolation in force: %s", isolation.describe())
            return sandbox
        if settings.sandbox != "auto":
            raise IsolationError(f"MAESTRO_SANDBOX={isolation.level} does not work here: {problem}")
        tried.append(f"{isolation.level}: {problem}")
    raise IsolationError("no isolation works on this host: " + "; ".join(tried))


def _hand_over(root: Path, uid: int) -> None:
    """Make the workspace the command's: owned by its uid (files an earlier command wrote included).

    A file with more than one link is left as it is: an earlier command could have linked a file of the
    host's into the workspace (where the kernel lets it), and that file must not become the next one's.
    """
    os.chown(root, uid, uid)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(parent, name)
            if name in files and os.lstat(path).st_nlink > 1:
                continue
            os.chown(path, uid, uid, follow_symlinks=False)


async def _kill_uid(isolation: Isolation, uid: int) -> None:
    """Kill every process of `uid` (kill(-1) as that uid signals exactly them)."""
    process = await asyncio.create_subprocess_exec(
        *isolation.argv("kill -9 -1 2>/dev/null; true", Path("/"), uid, None),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={"PATH": _SYSTEM_PATH},
    )
    await process.wait()


async def _once_started(starting: asyncio.Future[Process]) -> Process | None:
    """The process `starting` starts, once it has; None when it could not start (nothing to kill then)."""
    try:
        return await starting
    except Exception:  # it never started: the exception the caller sees already says why
        return None


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
