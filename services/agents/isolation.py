"""How far a sandboxed command is kept from the host: the levels this host offers, and the command line
that puts a command behind one.

Levels, best first:

- ``namespaces``: the command runs in new PID, network, mount, IPC and UTS namespaces (util-linux
  ``unshare``), with its own /proc, no network but a loopback that is down, the whole system read-only except
  its workspace and a private /tmp and /dev/shm, as an unprivileged uid of its own (as root; otherwise the
  service's own uid behind a user namespace), with every capability dropped and no way to gain one.
- ``user``: the command runs as an unprivileged uid of its own (``setpriv``), with no capability, in the
  host's namespaces: it sees the host's processes (not their environment) and network and may write where
  any user may (/tmp).
- ``none``: the command runs as the service's own user.

At every level the command has its own session and process group, the resource limits (RLIMIT_CPU, _AS,
_NPROC, _FSIZE, _NOFILE) and a scrubbed environment (services/agents/sandbox.py).
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import stat
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from maestro.embedded import dies_with_caller
from maestro.errors import CannotRun
from maestro.settings import Settings

Level = Literal["namespaces", "user", "none"]
LEVELS: tuple[Level, ...] = ("namespaces", "user", "none")
"""Every isolation level, best first."""

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TOOLS = ("unshare", "setpriv", "chroot", "mount", "mkdir", "awk", "sh")

# Runs as root (of the host, or of a user namespace) as PID 1 of the new namespaces, before the command:
# $1 an empty directory that becomes the command's root, $2 the workspace, $3 the size of the private /tmp,
# $4 directories to hide under an empty tmpfs and $5 directories to show read-only (one a line), then the
# command line to run in the new root. Every mount made here is private to the namespace (unshare's default
# propagation), so nothing of it is seen on the host, and it all goes when the namespace's last process does.
# A mount inherited through a user namespace keeps its nodev/noexec (the kernel refuses to drop them), so
# the read-only remount restates them.
_INIT = r"""set -eu
new=$1 ws=$2 tmp_bytes=$3 masks=$4 exposed=$5
shift 5
mount --rbind / "$new"
for m in $(awk -v n="$new" '$5 == n || index($5, n "/") == 1 {
    o = "remount,bind,ro,nosuid"
    if ($6 ~ /(^|,)nodev(,|$)/) o = o ",nodev"
    if ($6 ~ /(^|,)noexec(,|$)/) o = o ",noexec"
    print o ":" $5 }' /proc/self/mountinfo); do
  mount -o "${m%%:*}" "${m#*:}"
done
mount -t proc -o nosuid,nodev,noexec proc "$new/proc"
for d in /tmp /dev/shm; do
  if [ -d "$new$d" ]; then mount -t tmpfs -o "size=$tmp_bytes,mode=1777,nosuid,nodev" tmpfs "$new$d"; fi
done
IFS='
'
for d in $masks; do mkdir -p "$new$d"; mount -t tmpfs -o size=64k,mode=755,nosuid,nodev tmpfs "$new$d"; done
for d in $exposed; do
  mkdir -p "$new$d"; mount --bind "$d" "$new$d"; mount -o remount,bind,ro,nosuid "$new$d"
done
mkdir -p "$new$ws"
mount --bind "$ws" "$new$ws"
cd /
exec "$@"
"""


class IsolationError(CannotRun):
    """The isolation asked for does not work on this host (the text says why), or none does and the
    operator did not accept running commands without any."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command (each of its processes, except processes: all of its uid)."""

    cpu_s: int
    """RLIMIT_CPU: CPU seconds of each process (SIGXCPU then, SIGKILL a second later)."""
    memory_bytes: int
    """RLIMIT_AS: address space of each process (an allocation past it fails)."""
    processes: int
    """RLIMIT_NPROC: processes of the command's uid (a fork past it fails)."""
    file_bytes: int
    """RLIMIT_FSIZE: largest file a process may write (a write past it fails with SIGXFSZ)."""
    open_files: int
    """RLIMIT_NOFILE: open file descriptors of each process."""
    tmp_bytes: int
    """Size of the private /tmp and /dev/shm (namespaces level)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The limits MAESTRO_SANDBOX_* set."""
        return cls(
            cpu_s=max(1, round(settings.sandbox_cpu_s)),
            memory_bytes=settings.sandbox_memory_bytes,
            processes=settings.sandbox_processes,
            file_bytes=settings.sandbox_file_bytes,
            open_files=settings.sandbox_open_files,
            tmp_bytes=settings.sandbox_tmp_bytes,
        )

    def apply(self) -> None:
        """Set these limits on the calling process (a child between fork and exec), and so its children."""
        for which, soft, hard in (
            (resource.RLIMIT_CPU, self.cpu_s, self.cpu_s + 1),
            (resource.RLIMIT_AS, self.memory_bytes, self.memory_bytes),
            (resource.RLIMIT_NPROC, self.processes, self.processes),
            (resource.RLIMIT_FSIZE, self.file_bytes, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files, self.open_files),
        ):
            _, current = resource.getrlimit(which)
            if current != resource.RLIM_INFINITY:  # never above what the service itself may have
                soft, hard = min(soft, current), min(hard, current)
            resource.setrlimit(which, (soft, hard))


_DEFAULT_TMP_BYTES = 64 << 20
"""The private /tmp of a Sandbox built without limits (tests and examples)."""


@dataclass
class UidPool:
    """The uids commands run as, one per running command where the range allows it.

    One uid per command, because RLIMIT_NPROC counts every process of a uid: sharing one, a command's fork
    bomb would leave other tasks' commands unable to fork; and at the user level, killing every process of
    the uid afterwards is how a command that left its process group (setsid) is stopped.
    """

    first: int
    count: int
    taken: set[int] = field(default_factory=set)

    def take(self) -> tuple[int, bool]:
        """A uid, and whether this command has it to itself (False: the range is used up, it is shared)."""
        if len(self.taken) >= self.count:
            return self.first + random.randrange(self.count), False
        while True:
            # Random, so that two workers on one host seldom pick the same uid.
            uid = self.first + random.randrange(self.count)
            if uid not in self.taken:
                self.taken.add(uid)
                return uid, True

    def give_back(self, uid: int) -> None:
        """The command that ran as `uid` is over."""
        self.taken.discard(uid)


def _tool(name: str) -> str | None:
    return shutil.which(name, path=_SYSTEM_PATH)


def _traversable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IXOTH)
    except OSError:
        return False


def interpreter_mounts(prefixes: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(directories to hide, directories to show read-only) so the sandbox user can run this Python.

    The interpreter may live under a directory others cannot enter (pyenv under /root, mode 0700): that
    directory is then hidden under an empty one in the command's root and only the interpreter is shown.
    """
    shown: list[str] = []
    for prefix in sorted({os.path.realpath(p) for p in prefixes}):
        if not any(prefix == s or prefix.startswith(s + "/") for s in shown):
            shown.append(prefix)
    masks: list[str] = []
    for prefix in shown:
        parts = Path(prefix).parts
        for depth in range(2, len(parts)):
            ancestor = Path(*parts[:depth])
            if not _traversable_by_others(ancestor):
                if str(ancestor) not in masks:
                    masks.append(str(ancestor))
                break
    return tuple(masks), tuple(shown)


@dataclass(frozen=True)
class Isolation:
    """One isolation level on this host, and how to put a command behind it (pure: builds command lines)."""

    level: Level
    limits: Limits | None = None
    """None: no limit beyond the service's own (a Sandbox built without settings: tests and examples)."""
    uids: tuple[int, int] | None = None
    """The first uid commands run as and how many there are; None: the service's own uid."""
    user_namespace: bool = False
    """The namespaces level without root: the command's root is the service's uid behind a user namespace."""
    masks: tuple[str, ...] = ()
    """Host directories hidden under an empty one in the command's root (namespaces level)."""
    exposed: tuple[str, ...] = ()
    """Host directories shown read-only in the command's root, the masks notwithstanding (the interpreter)."""
    tools: dict[str, str] = field(default_factory=dict, compare=False)
    """Where the programs this level runs are (unshare, setpriv, chroot, ...), by name."""

    def argv(self, command: str, cwd: Path, uid: int | None, new_root: Path | None) -> list[str]:
        """The command line that runs `command` with `sh` in `cwd` at this level (as `uid` if given;
        `new_root` an empty directory for the namespaces level)."""
        if self.level == "none":
            return ["/bin/sh", "-c", command]
        # PID 1 of the namespace is a shell of its own that waits for the command's: the kernel's signals for
        # a limit (SIGXCPU, SIGKILL) reach the command as they would anywhere, and the command's status (128 +
        # the signal, as from any shell) comes out of unshare as an exit code.
        run_in_cwd = ["/bin/sh", "-c", 'cd -- "$1" && /bin/sh -c "$2"; exit $?', "sh", str(cwd), command]
        drop = [self.tools["setpriv"]]
        if uid is not None:
            drop += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        # --pdeathsig after a uid change, which clears it: the command dies with whoever started it.
        drop += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--pdeathsig=SIGKILL", "--"]
        if self.level == "user":
            return [*drop, "/bin/sh", "-c", command]
        assert new_root is not None
        # unshare blocks SIGTERM while it waits, so the parent-death signal that reaches it must be SIGKILL
        # (then --kill-child takes the namespace's PID 1, and with it every process in the namespace).
        unshare = [self.tools["setpriv"], "--pdeathsig=SIGKILL", "--", self.tools["unshare"]]
        if self.user_namespace:
            unshare.append("--user")
            unshare.append("--map-root-user")
        unshare += ["--fork", "--pid", "--net", "--mount", "--ipc", "--uts", "--kill-child", "--"]
        init = [self.tools["sh"], "-c", _INIT, "sandbox-init", str(new_root), str(cwd)]
        tmp_bytes = self.limits.tmp_bytes if self.limits else _DEFAULT_TMP_BYTES
        init += [str(tmp_bytes), "\n".join(self.masks), "\n".join(self.exposed)]
        return [*unshare, *init, self.tools["chroot"], str(new_root), *drop, *run_in_cwd]

    def preexec(self) -> Callable[[], None]:
        """The child's set-up between fork and exec: die with the agent, then take on the limits."""
        die = dies_with_caller()
        limits = self.limits

        def prepare() -> None:
            die()
            if limits is not None:
                limits.apply()

        return prepare

    def describe(self) -> str:
        """One line on what this level isolates, for the start-up log."""
        match self.level:
            case "namespaces":
                who = "the service's uid in a user namespace" if self.user_namespace else "a uid of its own"
                return f"namespaces (PID, network, mount, IPC, UTS; read-only system; as {who})"
            case "user":
                return "user (a uid of its own and resource limits; host network, processes and /tmp)"
            case _:
                return "none (commands run as the agent's own user, with resource limits only)"


def candidates(settings: Settings, limits: Limits | None = None) -> list[Isolation]:
    """The levels MAESTRO_SANDBOX allows on this host, best first, each with what it needs found (not yet
    tried); raises IsolationError when a level asked for by name lacks a tool it needs."""
    limits = limits or Limits.from_settings(settings)
    tools = {name: path for name in _TOOLS if (path := _tool(name))}
    root = os.geteuid() == 0
    uids = (settings.sandbox_uid, settings.sandbox_uid_count) if root else None
    masks, exposed = interpreter_mounts((sys.prefix, sys.base_prefix, str(Path(sys.executable).parent)))
    wanted = LEVELS if settings.sandbox == "auto" else tuple(lv for lv in LEVELS if lv == settings.sandbox)
    found: list[Isolation] = []
    for level in wanted:
        need = {"namespaces": _TOOLS, "user": ("setpriv",), "none": ()}[level]
        missing = [name for name in need if name not in tools]
        if level == "user" and not root:
            problem: str | None = "switching to another uid needs root"
        else:
            problem = f"not found: {', '.join(missing)}" if missing else None
        if problem:
            if settings.sandbox == level:
                raise IsolationError(f"MAESTRO_SANDBOX={level} cannot work here: {problem}")
            continue
        found.append(
            Isolation(
                level=level,
                limits=limits,
                uids=uids if level != "none" else None,
                user_namespace=level == "namespaces" and not root,
                masks=masks,
                exposed=exposed,
                tools=tools,
            )
        )
    return found
