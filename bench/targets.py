"""Issue 11's figures in one compact table: each value beside its same-run baseline, their ratio, the
issue's target and whether this run met it. figures() picks them from one run's results; table() lays
them out; both are pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench import mesh, messages
from bench.baseline import BaselineRun
from bench.pipeline import PipelineResult
from bench.workflows import WorkflowsResult

THROUGHPUT_OF_RAW = 0.4
"""The issue's bound on the pipeline's tasks/s as a share of the same-run raw JetStream msgs/s (same N)."""
P99_SUCCEEDED_MS = {500.0: 20.0, 1000.0: 100.0}
"""The issue's bound on p99 submit -> succeeded at an offered rate (tasks/s)."""
P99_RECORDED_MS = {500.0: 50.0}
"""The issue's bound on p99 submit -> recorded at an offered rate (tasks/s)."""
SERVICES_CPU_MS_PER_TASK = 0.5
"""The issue's bound on the services' CPU per task at full load (nats-server and harness not counted)."""
IDLE_PERCENT = 1.0
"""'Near 0%' made a number: no process of an idle mesh (its server too) may use more than this percentage
of one core; /proc counts CPU in 10 ms ticks, so over the default 10 s one tick is 0.1%."""


@dataclass(frozen=True)
class Figure:
    """One row: a value, its baseline (None: none measured), the target and whether it was met."""

    name: str
    value: float
    fmt: str
    """Format spec of the value and the baseline."""
    baseline: float | None = None
    target: str = "-"
    met: bool | None = None
    """None when the issue sets no target for it."""


def _below(value: float, bound: float, ok: bool = True) -> bool:
    return ok and not math.isnan(value) and value < bound


def figures(raw: BaselineRun, pipe: PipelineResult, workflows: WorkflowsResult | None) -> list[Figure]:
    """Every issue 11 figure this run measured, in the issue's order."""
    rows = []
    for t in pipe.throughputs:
        base = raw.at_n(t.n)
        bound = base.msgs_per_s * THROUGHPUT_OF_RAW if base is not None else None
        rows.append(
            Figure(
                f"tasks/s, N={t.n:,} (vs raw msgs/s)",
                t.tasks_per_s,
                ",.0f",
                base.msgs_per_s if base is not None else None,
                f">= {THROUGHPUT_OF_RAW}x",
                t.unfinished == 0 and bound is not None and t.tasks_per_s >= bound,
            )
        )
    for lat in pipe.latencies:
        hop = raw.at_rate(lat.rate)
        p50, p99 = (hop.p50_ms, hop.p99_ms) if hop is not None else (None, None)
        finished = lat.unfinished == 0 and lat.unrecorded == 0
        at = f"@{lat.rate:,.0f}/s"
        succeeded_bound = P99_SUCCEEDED_MS.get(lat.rate)
        recorded_bound = P99_RECORDED_MS.get(lat.rate)
        rows += [
            Figure(f"p50 ms submit->succeeded {at} (vs hop)", lat.p50_ms, ".1f", p50),
            Figure(
                f"p99 ms submit->succeeded {at} (vs hop)",
                lat.p99_ms,
                ".1f",
                p99,
                f"< {succeeded_bound:.0f}" if succeeded_bound else "-",
                _below(lat.p99_ms, succeeded_bound, finished) if succeeded_bound else None,
            ),
            Figure(f"p50 ms submit->recorded {at} (vs hop)", lat.recorded_p50_ms, ".1f", p50),
            Figure(
                f"p99 ms submit->recorded {at} (vs hop)",
                lat.recorded_p99_ms,
                ".1f",
                p99,
                f"< {recorded_bound:.0f}" if recorded_bound else "-",
                _below(lat.recorded_p99_ms, recorded_bound, finished) if recorded_bound else None,
            ),
        ]
    if pipe.search is not None:
        best = pipe.search.highest_passing
        rows.append(
            Figure(
                f"highest tasks/s with p99 < {pipe.search.bounds.p99_ms:.0f} ms",
                best if best is not None else 0.0,
                ",.0f",
            )
        )
    full = pipe.full_load
    if full is not None:
        base = raw.at_n(full.n)
        services_ms = 1000 * mesh.services_cpu(full.cpu_s) / full.n
        server_ms = 1000 * full.cpu_s.get(mesh.NATS_SERVER, 0.0) / full.n
        raw_ms = base.cpu_ms_per_msg if base is not None else None
        rows += [
            Figure(
                "services CPU ms/task (vs raw ms/msg)",
                services_ms,
                ".3f",
                raw_ms,
                f"<= {SERVICES_CPU_MS_PER_TASK}",
                services_ms <= SERVICES_CPU_MS_PER_TASK,
            ),
            Figure("with nats-server, CPU ms/task", services_ms + server_ms, ".3f", raw_ms),
        ]
        if full.messages is not None:
            rows.append(
                Figure(
                    "services' NATS messages/task (vs raw per msg)",
                    messages.total(full.messages, leave_out=(messages.HARNESS,)).total / full.n,
                    ".1f",
                    base.messages_per_msg if base is not None else None,
                )
            )
    if pipe.idle_cpu_s is not None:
        busiest, busiest_s = max(
            ((name, sec) for name, sec in pipe.idle_cpu_s.items() if name != mesh.HARNESS), key=lambda p: p[1]
        )
        percent = round(100 * busiest_s / pipe.idle_s, 2)
        rows.append(
            Figure(
                f"idle % of a core, busiest: {busiest}",
                percent,
                ".2f",
                None,
                f"<= {IDLE_PERCENT:.0f}%",
                percent <= IDLE_PERCENT,
            )
        )
    if workflows is not None:
        chains, single = workflows.chains, workflows.single
        rows.append(Figure("workflow steps/s (vs tasks/s)", chains.steps_per_s, ",.0f", single.tasks_per_s))
    unfinished = sum(t.unfinished for t in pipe.throughputs) + sum(
        lat.unfinished + lat.unrecorded for lat in pipe.latencies
    )
    rows.append(Figure("tasks not finished or recorded", unfinished, ".0f", None, "0", unfinished == 0))
    return rows


def _ratio(value: float, baseline: float | None) -> str:
    if not baseline:
        return "-"
    ratio = value / baseline
    return f"{ratio:,.0f}" if ratio >= 100 else f"{ratio:.1f}" if ratio >= 10 else f"{ratio:.3f}"


def table(rows: Sequence[Figure]) -> list[str]:
    """The rows under a heading, one line each."""
    lines = [
        "issue 11 targets (baseline: raw nats-py JetStream, same run; workflows: single tasks, same mesh)",
        f"{'figure':<42}{'value':>10}{'baseline':>10}{'ratio':>9}  {'target':<8}{'met':>4}",
    ]
    for r in rows:
        base = f"{r.baseline:>10{r.fmt}}" if r.baseline is not None else f"{'-':>10}"
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        lines.append(
            f"{r.name:<42}{r.value:>10{r.fmt}}{base}{_ratio(r.value, r.baseline):>9}  {r.target:<8}{met:>4}"
        )
    return lines
