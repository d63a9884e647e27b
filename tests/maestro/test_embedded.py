"""Children tied to the process that starts them: none outlives it, not even one it starts as it dies."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from maestro.embedded import dies_with_caller


def _run_from_a_child(arm_made_here: bool, marker: Path) -> int:
    """Fork; the forked process starts `touch marker` with a preexec_fn made by this process (as if this one
    were the parent that died before the signal was armed) or by itself; returns the command's exit code."""
    outer: Callable[[], None] = dies_with_caller()
    pid = os.fork()
    if pid == 0:  # the forked process: never returns into pytest
        code = 99
        try:
            arm = outer if arm_made_here else dies_with_caller()
            code = subprocess.run(["touch", str(marker)], preexec_fn=arm, check=False).returncode
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_child_started_for_a_parent_that_is_gone_exits_before_running_anything(tmp_path: Path) -> None:
    # Found by the workflow chaos scenario: an agent SIGKILLed between fork and arming the signal left its
    # command running with no parent while the task ran again elsewhere.
    marker = tmp_path / "ran"
    assert _run_from_a_child(arm_made_here=True, marker=marker) == 1
    assert not marker.exists()


def test_a_child_of_a_live_parent_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    assert _run_from_a_child(arm_made_here=False, marker=marker) == 0
    assert marker.exists()
