"""The effect line a chaos tester command writes, and reading it back."""

from __future__ import annotations

import subprocess
from pathlib import Path

from chaos.effects import Execution, command, parse, read


def test_the_command_records_the_task_the_shells_parent_and_the_time(tmp_path: Path) -> None:
    effects = tmp_path / "effects log"  # a space: the path is quoted
    shell = subprocess.Popen(["sh", "-c", command("t1", effects)])
    assert shell.wait(10) == 0
    found, bad = read(effects)
    assert bad == 0 and len(found) == 1
    assert found[0].task_id == "t1" and found[0].at_ns > 0


def test_a_torn_line_is_counted_not_read() -> None:
    found, bad = parse("t1 10 123\nt2 1")
    assert found == [Execution("t1", 10, 123)] and bad == 1


def test_no_file_yet_is_no_execution(tmp_path: Path) -> None:
    assert read(tmp_path / "none") == ([], 0)
