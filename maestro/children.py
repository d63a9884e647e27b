"""The child processes of `maestro up`: each started in a session of its own, dying with its parent, and
kept running by a Supervisor until it is told to stop.

A child that exits on its own is restarted with backoff; one that was told to stop is not, however it exits,
and neither is one that exits saying its settings are wrong (EXIT_CONFIG): a restart would refuse them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from asyncio.subprocess import Process
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from maestro.embedded import EmbeddedServerError, dies_with_caller

log = logging.getLogger(__name__)

EXIT_CONFIG = 78
"""Exit code of a child whose settings are wrong (sysexits' EX_CONFIG): restarting it cannot help."""

_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 10.0
_STEADY_S = 30.0
"""A child that ran this long before it exited is restarted after the first backoff again."""


async def spawn(argv: Sequence[str], *, env: dict[str, str] | None, log_file: Path | None) -> Process:
    """Start a child in a session of its own, so a Ctrl-C at the terminal does not reach it, dying with this
    process; its output goes to `log_file` (default: ours)."""
    # Opened once per start, not on a hot path: a blocking open is fine here.
    out: IO[bytes] | None = open(log_file, "ab") if log_file is not None else None  # noqa: ASYNC230
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=dies_with_caller(),
        )
    finally:
        if out is not None:
            out.close()


Launch = Callable[[], Awaitable[Process]]
"""Starts a child process once more."""


@dataclass
class _Child:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by stop(): not to be restarted any more."""
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once it was stopped and its last process has exited."""
    process: Process | None = None
    kept: bool = False
    """Whether keep_running ever ran it: one that never ran is gone as soon as it is stopped."""


def _send(process: Process | None, sig: signal.Signals) -> None:
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)


class Supervisor:
    """Keeps each child running: restarts one that exits on its own, with backoff; stops the children it
    is told to, in the order it is told. A child that exits saying its settings are wrong (EXIT_CONFIG)
    is not restarted: the supervisor records why and calls `on_refusal`, for the mesh to stop."""

    def __init__(self, on_refusal: Callable[[], object] = lambda: None) -> None:
        self._children: dict[str, _Child] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_refusal = on_refusal
        self.restarts: dict[str, int] = {}
        self.refused = asyncio.Event()
        self.refusal = ""
        """Which child refused its settings, and its last line when its output goes to a file."""

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *_: object) -> None:
        """Kill every child still kept running (those stop() did not stop) and wait for its task."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def start(
        self, name: str, launch: Launch, *, first: Process | None = None, log_file: Path | None = None
    ) -> None:
        """Keep a child running (keep_running) in a task this supervisor owns until its block ends."""
        self._tasks.add(asyncio.create_task(self.keep_running(name, launch, first=first, log_file=log_file)))

    async def keep_running(
        self, name: str, launch: Launch, *, first: Process | None = None, log_file: Path | None = None
    ) -> None:
        """Run a child (`first`, if it was started already) until stop() names it; restart it whenever it
        exits on its own or fails to start, unless it refused its settings. Cancelled, it kills the child.
        `log_file` is where its output goes, to quote its refusal."""
        child = self._children.setdefault(name, _Child())
        child.kept = True
        loop = asyncio.get_running_loop()
        backoff = _FIRST_BACKOFF_S
        try:
            while not child.stop.is_set():
                started = loop.time()
                try:
                    child.process = first or await launch()
                except (OSError, EmbeddedServerError) as exc:
                    outcome = f"could not start ({exc})"
                else:
                    if child.stop.is_set():  # stop() came while it was starting
                        _send(child.process, signal.SIGTERM)
                    code = await child.process.wait()
                    if child.stop.is_set():  # told to: however it exited, it is not restarted
                        return
                    if code == EXIT_CONFIG:  # a restart would refuse the same settings again
                        self._refuse(name, log_file)
                        return
                    outcome = f"exited with code {code}"
                first = None
                if loop.time() - started > _STEADY_S:
                    backoff = _FIRST_BACKOFF_S
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.warning("%s %s; restarting in %.1fs", name, outcome, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.stop.wait(), backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
        finally:
            _send(child.process, signal.SIGKILL)  # only when cancelled: otherwise it has exited
            child.gone.set()

    def _refuse(self, name: str, log_file: Path | None) -> None:
        said = _last_line(log_file) if log_file is not None else None
        self.refusal = f"{name} cannot run with these settings" + (f": {said}" if said else " (see above)")
        log.error("%s; not restarting it", self.refusal)
        if not self.refused.is_set():
            self.refused.set()
            self._on_refusal()

    def pid(self, name: str) -> int | None:
        """The current process id of a child."""
        child = self._children.get(name)
        process = child.process if child else None
        return process.pid if process and process.returncode is None else None

    def signal(self, names: Collection[str], sig: signal.Signals) -> None:
        """Send a signal to these children (those running)."""
        for name in names:
            child = self._children.get(name)
            if child is not None:
                _send(child.process, sig)

    async def stop(self, names: Collection[str], deadline: float) -> list[str]:
        """SIGTERM these children and wait until they exit or the loop's clock reaches `deadline`, then
        SIGKILL what is left; none is restarted any more. Returns the names that had to be killed."""
        children = {name: self._children.setdefault(name, _Child()) for name in names}
        for child in children.values():
            child.stop.set()
            _send(child.process, signal.SIGTERM)
            if not child.kept:  # never started (its start failed, say): nothing to wait for
                child.gone.set()
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.gather(*(child.gone.wait() for child in children.values()))
            return []
        except TimeoutError:
            late = [name for name, child in children.items() if not child.gone.is_set()]
            log.warning("%s did not stop in time; killing", ", ".join(late))
            for name in late:
                _send(children[name].process, signal.SIGKILL)
            await asyncio.gather(*(children[name].gone.wait() for name in late))
            return late


def _last_line(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return None
    return lines[-1].strip() if lines else None


def alive(pid: int) -> bool:
    """Whether a process with this id runs (this user's or another's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
