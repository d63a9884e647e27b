"""The real side effect a chaos tester task leaves: one line appended to a file the harness owns.

A line is `<task id> <pid of the agent that ran the command> <wall clock ns>`. More than one line for an
id means the command ran more than once; the pid tells whether its first run was by an agent the harness
killed. The default policy bundle allows the command (paths under /tmp are inside the workspace roots).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Execution:
    """One run of a task's command, as its line says."""

    task_id: str
    pid: int
    at_ns: int


def command(task_id: str, effects_file: Path, *, sleep_s: float = 0.0) -> str:
    """The shell command that records one execution of `task_id` (after sleeping `sleep_s`)."""
    # $PPID in `sh -c` is the process that started the shell: the agent.
    record = f"echo {task_id} $PPID $(date +%s%N) >> {shlex.quote(str(effects_file))}"
    return f"sleep {sleep_s:g}; {record}" if sleep_s > 0 else record


def parse(text: str) -> tuple[list[Execution], int]:
    """The executions in an effects file's text, and how many lines could not be read (torn writes)."""
    found: list[Execution] = []
    bad = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            bad += 1
            continue
        found.append(Execution(parts[0], int(parts[1]), int(parts[2])))
    return found, bad


def read(path: Path) -> tuple[list[Execution], int]:
    """The executions recorded in `path` so far (none when it does not exist yet)."""
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        return [], 0
