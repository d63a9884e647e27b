"""The table `make chaos` prints: one row per scenario, then every violation and note under it."""

from __future__ import annotations

from collections.abc import Sequence

from chaos.invariants import Report

HEADERS = (
    "scenario",
    "submitted",
    "terminal by state",
    "executions",
    "duplicates",
    "charged/recorded µUSD",
    "overspend",
    "seconds",
    "result",
)


def states(report: Report) -> str:
    """`succeeded 180 rejected 20`: tasks by the state their record ended in."""
    return " ".join(f"{state} {count}" for state, count in report.states.items()) or "-"


def row(report: Report) -> tuple[str, ...]:
    """The cells of one scenario's row."""
    duplicates = str(report.duplicates) + (f" (+{report.excused} excused)" if report.excused else "")
    return (
        report.scenario,
        str(report.submitted),
        states(report),
        str(report.executions),
        duplicates,
        f"{report.charged}/{report.recorded}",
        str(report.overspend),
        f"{report.seconds:.0f}",
        "ok" if report.ok else f"FAIL ({len(report.violations)})",
    )


def render(reports: Sequence[Report]) -> str:
    """The table, then each scenario's violations (`!`) and notes (`-`)."""
    rows = [HEADERS, *(row(r) for r in reports)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for report in reports:
        if report.violations or report.notes:
            lines.append("")
            lines.append(f"{report.scenario}:")
            lines += [f"  ! {v}" for v in report.violations]
            lines += [f"  - {n}" for n in report.notes]
    failed = [r.scenario for r in reports if not r.ok]
    lines.append("")
    lines.append(f"{len(reports) - len(failed)} of {len(reports)} scenarios kept every invariant")
    return "\n".join(lines)
