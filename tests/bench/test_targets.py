"""Issue 11's table: each figure beside its same-run baseline, with the target and whether it was met."""

from __future__ import annotations

from bench.baseline import BaselineLatency, BaselineResult, BaselineRun
from bench.capacity import Bounds, Search
from bench.pipeline import Latency, PipelineResult, Throughput
from bench.targets import figures, table


def throughput(n: int, seconds: float, services_cpu_s: float) -> Throughput:
    cpu = {"guard": services_cpu_s / 2, "agents": services_cpu_s / 2, "nats-server": 1.0, "harness": 5.0}
    return Throughput(n, 0.1, seconds, 0, 0, n, None, cpu)


def latency(rate: float, p99_ms: float, recorded_p99_ms: float, unfinished: int = 0) -> Latency:
    return Latency(
        rate=rate,
        offered=int(rate * 30),
        achieved_rate=rate,
        p50_ms=p99_ms / 3,
        p99_ms=p99_ms,
        max_ms=p99_ms * 2,
        unfinished=unfinished,
        recorded_p50_ms=recorded_p99_ms / 3,
        recorded_p99_ms=recorded_p99_ms,
        unrecorded=0,
        wall_s=30.0,
        cpu_s={},
    )


RAW = BaselineRun(
    (BaselineResult(5000, 80, 0.2, 0.2, 0.5), BaselineResult(20000, 80, 0.8, 0.8, 2.0)),
    (BaselineLatency(500.0, 5000, 0.5, 1.0), BaselineLatency(1000.0, 10000, 0.5, 2.0)),
)


def result(latencies: tuple[Latency, ...], idle: dict[str, float]) -> PipelineResult:
    lows = (latency(250, 10, 12),)
    return PipelineResult(
        throughputs=(throughput(5000, 5.0, 3.0), throughput(20000, 10.0, 8.0)),
        latencies=latencies,
        search=Search((*latencies, *lows), Bounds(p99_ms=50.0)),
        idle_cpu_s=idle,
        idle_s=10.0,
    )


def test_each_figure_stands_beside_its_baseline_and_its_target() -> None:
    run = result((latency(500, 15, 40), latency(1000, 120, 130)), {"guard": 0.01, "harness": 1.0})
    rows = {f.name: f for f in figures(RAW, run, None)}

    assert rows["tasks/s, N=5,000 (vs raw msgs/s)"].value == 1000
    assert rows["tasks/s, N=5,000 (vs raw msgs/s)"].baseline == 12500
    assert rows["tasks/s, N=20,000 (vs raw msgs/s)"].value == 2000
    assert rows["tasks/s, N=5,000 (vs raw msgs/s)"].met is False  # 0.08 of raw
    assert rows["tasks/s, N=20,000 (vs raw msgs/s)"].target == ">= 0.4x"
    assert rows["p99 ms submit->succeeded @500/s (vs hop)"].met is True
    assert rows["p99 ms submit->recorded @500/s (vs hop)"].met is True
    assert rows["p99 ms submit->succeeded @1,000/s (vs hop)"].met is False
    assert rows["p99 ms submit->succeeded @1,000/s (vs hop)"].baseline == 2.0
    assert rows["p99 ms submit->recorded @1,000/s (vs hop)"].met is None
    assert rows["highest tasks/s with p99 < 50 ms"].value == 500
    cpu = rows["services CPU ms/task (vs raw ms/msg)"]
    assert (cpu.value, cpu.baseline, cpu.met) == (0.4, 0.1, True)
    assert rows["with nats-server, CPU ms/task"].value == 0.45
    idle = rows["idle % of a core, busiest: guard"]
    assert idle.value == 0.1 and idle.met is True  # the harness is not the mesh
    assert rows["tasks not finished or recorded"].met is True


def test_a_target_is_missed_when_tasks_were_left_unfinished_however_low_the_p99() -> None:
    run = result((latency(500, 15, 40, unfinished=2),), {"guard": 0.5})
    rows = {f.name: f for f in figures(RAW, run, None)}

    assert rows["p99 ms submit->succeeded @500/s (vs hop)"].met is False
    assert rows["idle % of a core, busiest: guard"].met is False
    assert rows["tasks not finished or recorded"].value == 2


def test_the_table_prints_a_line_per_figure_with_ratio_and_verdict() -> None:
    run = result((latency(500, 25, 40),), {"guard": 0.0})
    lines = table(figures(RAW, run, None))

    p99 = next(line for line in lines if line.startswith("p99 ms submit->succeeded @500/s"))
    assert p99.split()[-6:] == ["25.0", "1.0", "25.0", "<", "20", "NO"]
    tasks = next(line for line in lines if line.startswith("tasks/s, N=20,000"))
    assert tasks.split()[-6:] == ["2,000", "12,500", "0.160", ">=", "0.4x", "NO"]
    best = next(line for line in lines if line.startswith("highest tasks/s"))
    assert best.split()[-4:] == ["-", "-", "-", "-"]
