"""What one message costs a Python process on this machine when it comes alone, measured on two floors in a
child process offered one request at a time at a fixed rate: the CPU the child spends per message it
receives or sends.

- A bare asyncio (uvloop) TCP echo: a read, a write and the event loop's wake-up. No NATS at all.
- A bare nats-py responder (core NATS request/reply, no JetStream): what every service pays per message
  before any of Maestro's code runs, since every service talks to NATS through nats-py.

A message that arrives while the process sleeps pays for the wake-up (the kernel's, the loop's, the
client's) alone; messages that arrive together share one. Measured here (2 cores): the nats-py responder
spends 170-200 us per message at 100 requests/s and about 90 us at 1,000 or more. The mesh's services, at
100 tasks/s, spend about as much per message as that responder (bench/pipeline.py prints their CPU per
message beside their message counts), so at a modest rate the cost of a task is its messages times this
floor, whatever the code that handles them does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nats
import uvloop
from nats.aio.msg import Msg

from bench.mesh import cpu_seconds
from bench.schedule import on_schedule
from maestro.embedded import dies_with_caller, running_nats_server
from maestro.supervisor import free_port

T = TypeVar("T")

RATES = (100.0, 1000.0)
"""Requests per second offered: one as lone as the mesh's hops at 100 tasks/s, one where they bunch."""
MESSAGE = b"x" * 200
"""About the size of a small task event."""
SUBJECT = "bench.wakeup"
ECHO, RESPONDER = "asyncio echo", "nats-py responder"


@dataclass(frozen=True)
class WakeupCost:
    """One floor's CPU per message at one offered rate."""

    floor: str
    rate: float
    requests: int
    cpu_us_per_msg: float
    """The child's CPU per message it handled: each request is two, the one in and the answer out."""


async def _echo(port: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)

    server = await asyncio.start_server(echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _respond(url: str) -> None:
    nc = await nats.connect(url, name="bench-wakeup-responder")

    async def answer(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(SUBJECT, cb=answer)
    await asyncio.Event().wait()


async def _paced(
    pid: int, floor: str, rate: float, duration_s: float, ask: Callable[[], Awaitable[None]]
) -> WakeupCost:
    """Send one request at a time on the schedule of `rate`, each answered before the next is due."""
    count = max(1, int(rate * duration_s))
    before = cpu_seconds(pid)
    async for _ in on_schedule(rate, count):
        await ask()
    return WakeupCost(floor, rate, count, 1e6 * (cpu_seconds(pid) - before) / (2 * count))


@contextlib.asynccontextmanager
async def _child(*args: str) -> AsyncIterator[int]:
    """This module run as a child process with `args` for the block; its pid."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.wakeup", *args, preexec_fn=dies_with_caller()
    )
    try:
        yield child.pid
    finally:
        child.kill()
        await child.wait()


async def _first(attempt: Callable[[], Awaitable[T]], starting: type[Exception], what: str) -> T:
    """What `attempt` gives once the child answers; `starting` is the error it raises until then."""
    for _ in range(100):
        try:
            return await attempt()
        except starting:
            await asyncio.sleep(0.05)  # the child is still starting: try again shortly
    raise RuntimeError(f"{what} did not answer")


async def _echo_floor(rates: Sequence[float], duration_s: float) -> list[WakeupCost]:
    port = free_port()
    async with _child("--echo", str(port)) as pid:
        reader, writer = await _first(
            lambda: asyncio.open_connection("127.0.0.1", port), OSError, "the echo process"
        )

        async def ask() -> None:
            writer.write(MESSAGE)
            await reader.readexactly(len(MESSAGE))

        try:
            return [await _paced(pid, ECHO, rate, duration_s, ask) for rate in rates]
        finally:
            writer.close()


async def _responder_floor(rates: Sequence[float], duration_s: float) -> list[WakeupCost]:
    with tempfile.TemporaryDirectory(prefix="maestro-bench-") as tmp:
        with running_nats_server(Path(tmp) / "jetstream") as server:
            async with _child("--respond", server.url) as pid:
                nc = await nats.connect(server.url, name="bench-wakeup")
                try:

                    async def ask() -> None:
                        await nc.request(SUBJECT, MESSAGE, timeout=5)

                    await _first(ask, nats.errors.NoRespondersError, "the nats-py responder")
                    return [await _paced(pid, RESPONDER, rate, duration_s, ask) for rate in rates]
                finally:
                    await nc.close()


async def run(rates: Sequence[float] = RATES, duration_s: float = 5.0) -> tuple[WakeupCost, ...]:
    """Both floors at each rate, `duration_s` each."""
    return (*await _echo_floor(rates, duration_s), *await _responder_floor(rates, duration_s))


def describe(costs: Sequence[WakeupCost]) -> list[str]:
    """One line per floor."""
    lines = []
    for floor in (ECHO, RESPONDER):
        parts = ", ".join(f"{c.cpu_us_per_msg:.0f} us at {c.rate:,.0f}/s" for c in costs if c.floor == floor)
        lines.append(f"a lone message's floor, {floor} (its CPU per message in or out): {parts}")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.wakeup [--rates R ...] [--duration S]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.wakeup", description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES), help="offered requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate")
    parser.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--respond", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo:
        uvloop.run(_echo(args.echo))
    elif args.respond:
        uvloop.run(_respond(args.respond))
    else:
        for line in describe(asyncio.run(run(args.rates, args.duration))):
            print(line)


if __name__ == "__main__":
    main()
