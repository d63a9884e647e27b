"""How `maestro doctor` prints its findings: a table, one line each, or one JSON document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import msgspec

from maestro.doctor.findings import EXIT_UNREACHABLE, Finding, counted
from maestro.terminal import printable

_SUBJECT_WIDTH = 28
"""The subject column's widest; a longer subject (a task id) pushes its own line's message along."""


class Report(msgspec.Struct, frozen=True):
    """What `maestro doctor --json` prints: the verdict, the counts, and every finding."""

    healthy: bool
    """No problem found (warnings may remain)."""
    exit_code: int
    problems: int
    warnings: int
    findings: list[Finding]


def report(findings: Sequence[Finding], exit_code: int) -> Report:
    """The report of these findings, which the doctor ends with `exit_code`."""
    counts = Counter(f.severity for f in findings)
    return Report(
        healthy=exit_code == 0,
        exit_code=exit_code,
        problems=counts["problem"],
        warnings=counts["warn"],
        findings=list(findings),
    )


def as_json(findings: Sequence[Finding], exit_code: int) -> str:
    """The report as one JSON document."""
    return msgspec.json.encode(report(findings, exit_code)).decode()


def as_table(findings: Sequence[Finding], exit_code: int) -> str:
    """A line per finding (`severity  check  subject  message -> what to do`), then a summary line."""
    subject_width = min(_SUBJECT_WIDTH, max((len(f.subject) for f in findings), default=0))
    lines = []
    for f in findings:
        fix = f"  -> {f.fix}" if f.fix else ""
        line = f"{f.severity:<7}  {f.check:<8}  {f.subject:<{subject_width}}  {f.message}{fix}"
        lines.append(printable(line))
    done = report(findings, exit_code)
    ok = len(findings) - done.problems - done.warnings
    verdict = "healthy" if done.healthy else ("unreachable" if exit_code == EXIT_UNREACHABLE else "unhealthy")
    lines.append(
        f"{verdict}: {counted(done.problems, 'problem')}, {counted(done.warnings, 'warning')}, {ok} ok"
    )
    return "\n".join(lines)
