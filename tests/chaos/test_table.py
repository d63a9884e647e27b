"""The table `make chaos` prints, as the README shows it."""

from __future__ import annotations

from pathlib import Path

from chaos.invariants import Report
from chaos.table import render

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_shows_the_table_as_it_is_printed() -> None:
    report = Report(
        "kill-agents",
        submitted=200,
        states={"succeeded": 180, "rejected": 20},
        executions=180,
        charged=64260,
        recorded=64260,
        seconds=17,
    )
    shown = README.read_text().split("### Reliability: `make chaos` and `make soak`", 1)[1]
    example = shown.split("\n```\nscenario", 1)[1].split("```", 1)[0]
    assert "scenario" + example == "\n".join(render([report]).splitlines()[:3]) + "\n"


def test_violations_and_notes_are_listed_under_the_table_and_fail_the_row() -> None:
    report = Report(
        "kill-budget", executions=3, duplicates=1, excused=2, violations=("ran twice",), notes=("n",)
    )
    lines = render([report]).splitlines()
    assert lines[2].split()[4:6] == ["1", "(+2"] and lines[2].endswith("FAIL (1)")
    assert lines[4:7] == ["kill-budget:", "  ! ran twice", "  - n"]
    assert lines[-1] == "0 of 1 scenarios kept every invariant"
