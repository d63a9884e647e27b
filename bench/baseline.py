"""The floor to compare against: raw nats-py JetStream publish, pull-consume and ack on a fresh server."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from bench.mesh import cpu_seconds, harness_cpu_seconds
from bench.messages import MessageMeter, Traffic, total
from bench.schedule import on_schedule
from maestro import codec
from maestro.embedded import running_nats_server
from proto.v1 import TaskRequest

STREAM = "BENCH"
SUBJECT = "bench.baseline"
DURABLE = "bench"
FETCH_BATCH = 256


@dataclass(frozen=True)
class BaselineResult:
    """How fast raw nats-py moved N messages through one JetStream stream."""

    n: int
    payload_bytes: int
    publish_s: float
    consume_s: float
    cpu_s: float = 0.0
    """CPU seconds the server and this client spent on it together."""
    messages: Traffic | None = None
    """NATS messages this client and the server exchanged for it, as the server counted them."""

    @property
    def total_s(self) -> float:
        """Wall time from the first publish to the last ack."""
        return self.publish_s + self.consume_s

    @property
    def msgs_per_s(self) -> float:
        """Messages stored, delivered and acked per second, end to end."""
        return self.n / self.total_s

    @property
    def cpu_ms_per_msg(self) -> float:
        """Server plus client CPU milliseconds per message."""
        return 1000 * self.cpu_s / self.n

    @property
    def messages_per_msg(self) -> float | None:
        """NATS messages either way per message stored, delivered and acked."""
        return None if self.messages is None else self.messages.total / self.n


def payload() -> bytes:
    """A message the size of a trivial task request, so both benchmarks move similar bytes."""
    return codec.encode(TaskRequest(tenant="bench", role="planner", prompt="Plan a CLI that counts words"))


async def measure(url: str, n: int) -> BaselineResult:
    """Publish `n` messages (async, acks awaited), then fetch and ack all of them with a pull consumer."""
    nc = await nats.connect(url, name="bench-baseline")
    try:
        js = nc.jetstream(timeout=10)
        stream, subject = f"{STREAM}_{n}", f"{SUBJECT}.{n}"
        await js.add_stream(
            StreamConfig(
                name=stream,
                subjects=[subject],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
            )
        )
        data = payload()
        started = time.perf_counter()
        futures = [await js.publish_async(subject, data) for _ in range(n)]
        await asyncio.gather(*futures)
        published = time.perf_counter()

        sub = await js.pull_subscribe(
            subject,
            durable=DURABLE,
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=-1),
        )
        acked = 0
        while acked < n:
            try:
                msgs = await sub.fetch(min(FETCH_BATCH, n - acked), timeout=5)
            except TimeoutError:
                raise RuntimeError(f"baseline stalled after {acked} of {n} messages") from None
            for msg in msgs:
                await msg.ack()
            acked += len(msgs)
        await nc.flush()
        consumed = time.perf_counter()
        return BaselineResult(n, len(data), published - started, consumed - published)
    finally:
        await nc.close()


@dataclass(frozen=True)
class BaselineLatency:
    """One JetStream hop at a fixed offered rate: publish (stored, acked) -> fetched by a pull consumer."""

    rate: float
    count: int
    p50_ms: float
    p99_ms: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The value at quantile `q` of already sorted values (nearest rank)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))]


async def measure_latency(url: str, rate: float, duration_s: float) -> BaselineLatency:
    """Publish at `rate` per second for `duration_s` while a pull consumer fetches and acks."""
    nc = await nats.connect(url, name="bench-baseline-latency")
    try:
        js = nc.jetstream(timeout=10)
        stream, subject = f"{STREAM}_LAT_{rate:.0f}", f"{SUBJECT}.latency.{rate:.0f}"
        await js.add_stream(
            StreamConfig(
                name=stream,
                subjects=[subject],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
            )
        )
        sub = await js.pull_subscribe(
            subject,
            durable=f"{DURABLE}-latency",
            stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
        )
        count = int(rate * duration_s)
        sent: dict[int, float] = {}
        waits: list[float] = []

        async def consume() -> None:
            while len(waits) < count:
                try:
                    msgs = await sub.fetch(FETCH_BATCH, timeout=0.5)
                except TimeoutError:
                    continue
                now = time.perf_counter()
                for msg in msgs:
                    waits.append((now - sent[int(msg.data[:12])]) * 1000)
                    await msg.ack()

        consumer = asyncio.create_task(consume())
        filler = payload()
        async for i in on_schedule(rate, count):
            sent[i] = time.perf_counter()
            await js.publish(subject, b"%012d" % i + filler)
        await asyncio.wait_for(consumer, timeout=30)
        waits.sort()
        return BaselineLatency(rate, count, percentile(waits, 0.50), percentile(waits, 0.99))
    finally:
        await nc.close()


@dataclass(frozen=True)
class BaselineRun:
    """Every baseline figure of one run, on one server: throughput per N, hop latency per rate."""

    throughputs: tuple[BaselineResult, ...]
    latencies: tuple[BaselineLatency, ...]

    def at_n(self, n: int) -> BaselineResult | None:
        """The throughput run of `n` messages, if one was made."""
        return next((r for r in self.throughputs if r.n == n), None)

    def at_rate(self, rate: float) -> BaselineLatency | None:
        """The latency run at `rate` msgs/s, if one was made."""
        return next((lat for lat in self.latencies if lat.rate == rate), None)


async def run(ns: Sequence[int], rates: Sequence[float] = (), duration_s: float = 0.0) -> BaselineRun:
    """Measure on a fresh embedded nats-server in a temporary folder: a throughput run of each N (with the
    CPU server and client spent), then a latency run at each rate when duration_s > 0."""
    with tempfile.TemporaryDirectory(prefix="maestro-bench-") as tmp:
        with running_nats_server(Path(tmp) / "jetstream", monitored=True) as server:
            assert server.monitor_url is not None
            results = []
            for n in ns:
                counted = await MessageMeter(server.monitor_url).start()
                before = cpu_seconds(server.process.pid) + harness_cpu_seconds()
                result = await measure(server.url, n)
                spent = cpu_seconds(server.process.pid) + harness_cpu_seconds() - before
                traffic = total(await counted.spent())
                results.append(dataclasses.replace(result, cpu_s=spent, messages=traffic))
            latencies = []
            if duration_s > 0:
                for rate in rates:
                    latencies.append(await measure_latency(server.url, rate, duration_s))
            return BaselineRun(tuple(results), tuple(latencies))


def describe(result: BaselineResult) -> str:
    """One line for the report."""
    return (
        f"raw JetStream: {result.n} msgs ({result.payload_bytes} B) in {result.total_s:.2f}s = "
        f"{result.msgs_per_s:,.0f} msgs/s (publish {result.n / result.publish_s:,.0f}/s, "
        f"fetch+ack {result.n / result.consume_s:,.0f}/s); "
        f"server+client cpu {result.cpu_ms_per_msg:.3f} ms/msg"
        + (f", {per:.1f} nats messages/msg" if (per := result.messages_per_msg) is not None else "")
    )


def describe_latency(lat: BaselineLatency) -> str:
    """One line for the report."""
    return (
        f"raw JetStream latency @ {lat.rate:.0f} msgs/s ({lat.count} msgs): publish -> fetched "
        f"p50 {lat.p50_ms:.2f} ms, p99 {lat.p99_ms:.2f} ms"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.baseline [--n N] [--rate R --duration S]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--n", type=int, nargs="+", default=[5000], help="messages per run (default 5000)")
    parser.add_argument("--rate", type=float, nargs="+", default=[200.0], help="offered msgs/s, latency runs")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds of each latency run (0: skip)")
    args = parser.parse_args(argv)
    baseline = asyncio.run(run(args.n, args.rate, args.duration))
    for result in baseline.throughputs:
        print(describe(result))
    for lat in baseline.latencies:
        print(describe_latency(lat))


if __name__ == "__main__":
    main()
