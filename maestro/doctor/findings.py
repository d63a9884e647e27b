"""What the doctor says: findings, each one line with what to do, and the exit code they make."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Severity = Literal["ok", "warn", "problem"]

EXIT_HEALTHY = 0
EXIT_PROBLEM = 1
EXIT_UNREACHABLE = 2


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    check: str
    """What was checked: server, stream, bucket, store, consumer, dlq, tasks, holds, service, workers."""
    subject: str
    """What it is about: a stream, a consumer, a service, a role."""
    severity: Severity
    message: str
    fix: str = ""
    """What to do about it; empty when it is ok."""


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when any finding is a problem, else 0 (warnings alone do not fail)."""
    return EXIT_PROBLEM if any(f.severity == "problem" for f in findings) else EXIT_HEALTHY


def unreachable(where: str, why: str) -> Finding:
    """The one finding when the server cannot be reached at all (exit 2)."""
    return Finding(
        "server",
        where,
        "problem",
        why,
        "start Maestro (maestro up) or NATS, or point MAESTRO_NATS_URL (and MAESTRO_NATS_CREDS) at it",
    )


def counted(n: int, noun: str) -> str:
    """`1 replica`, `3 replicas`."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


def ago(now: datetime, then: datetime) -> str:
    """How long before `now` `then` was, in its largest unit: `3d`, `2h`, `59m`, `30s`."""
    seconds = max(0.0, (now - then).total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:.0f}s"


def one_line(text: str, most: int = 120) -> str:
    """`text` on one line, its runs of white space one space, cut to `most` characters."""
    line = " ".join(text.split())
    return line if len(line) <= most else line[: most - 1] + "…"
