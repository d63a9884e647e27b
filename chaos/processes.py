"""Processes as /proc shows them: the tree under a process, what each runs, its memory and open files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class Proc:
    """One live process: its id, its parent's, and its command line."""

    pid: int
    ppid: int
    argv: tuple[str, ...]

    @property
    def service(self) -> str | None:
        """What it is in a mesh: `nats-server`, a service name (`guard`), or None."""
        if self.argv and os.path.basename(self.argv[0]) == "nats-server":
            return "nats-server"
        for flag, module in zip(self.argv, self.argv[1:], strict=False):
            if flag == "-m" and module.startswith("services."):
                return module.removeprefix("services.")
        return None


def _read(pid: int) -> Proc | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None  # it ended while we looked
    # The command name in stat is in parentheses and may hold spaces: the fields after the last `)`.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None  # a zombie has exited; only its parent has not reaped it yet
    argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return Proc(pid=pid, ppid=int(fields[1]), argv=argv)


def snapshot() -> list[Proc]:
    """Every live process on the machine."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            proc = _read(int(entry.name))
            if proc is not None:
                found.append(proc)
    return found


def descendants(root: int, procs: Iterable[Proc]) -> list[Proc]:
    """The processes below `root` (children, their children, ...), parents before children."""
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    frontier = [root]
    while frontier:
        below = [c for pid in frontier for c in children.get(pid, [])]
        found += below
        frontier = [c.pid for c in below]
    return found


def environ(pid: int, name: str) -> str | None:
    """One variable of a process's environment as it started, or None (unset, or the process is gone)."""
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    prefix = name.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def alive(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie has)."""
    return _read(pid) is not None


def rss_kib(pid: int) -> int | None:
    """Resident memory in KiB (VmRSS), or None when the process is gone."""
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def open_files(pid: int) -> int | None:
    """How many file descriptors the process holds, or None when it is gone."""
    try:
        return len(os.listdir(_PROC / str(pid) / "fd"))
    except OSError:
        return None
