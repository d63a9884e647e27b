"""THE BUDGET TEST: three budget processes, 200 concurrent reservers, one replica SIGKILLed halfway.

At every step spent + held <= limit (every answer and every ledger revision is checked), at the end each
tenant's spent is exactly the sum of its distinct commits, and no hold outlives its ttl.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import RemoteError
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import Commit, LedgerView, Release, Reservation, Reserve, Settlement, Usage
from services.budget.ledger import Ledger
from tests.services.budget.support import answering

ROOT = Path(__file__).resolve().parents[3]
TENANTS = ("alpha", "beta")
LIMIT = 2_000_000
RESERVERS = 200
ROUNDS = 4
T = TypeVar("T")


@contextmanager
def budget_replicas(settings: Settings, count: int, log_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` processes of `python -m services.budget`; killed after the block."""
    env = {
        **os.environ,
        "MAESTRO_NATS_URL": settings.nats_url or "",
        "MAESTRO_DATA_DIR": settings.data_dir,
        "MAESTRO_HTTP_PORT": "0",
        "MAESTRO_LOG_LEVEL": "WARNING",
        "MAESTRO_DEFAULT_LIMIT_MICRO_USD": str(LIMIT),
        "MAESTRO_PRICING": "unit=1:0",  # one micro-USD per input token: a commit's cost is its tokens
        "MAESTRO_BUDGET_SWEEP_S": "0.5",
    }
    processes = []
    try:
        for n in range(count):
            with open(log_dir / f"budget-{n}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "services.budget"],
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


async def replicas_answering(bus: Bus, count: int, within: float = 15.0) -> None:
    """Until `count` budget replicas answer the micro-service ping."""
    await bus.discovery.instances(topics.BUDGET_SERVICE, count, within=within)


async def persist(call: Callable[[], Awaitable[T]]) -> T:
    """Call until the budget answers: a killed replica's requests time out and are retried."""
    while True:
        try:
            return await call()
        except RemoteError as exc:
            if exc.code < 500:
                raise
            await asyncio.sleep(0.02)


@dataclass
class Books:
    """What the reservers did, to check the ledgers against."""

    committed: dict[str, dict[str, int]] = field(default_factory=lambda: {t: {} for t in TENANTS})
    violations: list[str] = field(default_factory=list)
    answers: int = 0
    granted: int = 0
    refused: int = 0
    rounds_done: int = 0
    halfway: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self, answer: Reservation | Settlement) -> None:
        """No answer may show a tenant past its limit (commits never exceed their hold here)."""
        self.answers += 1
        if answer.remaining_micro_usd < 0:
            self.violations.append(f"answer shows remaining {answer.remaining_micro_usd}: {answer}")


async def reserver(bus: Bus, n: int, books: Books, rng: random.Random) -> None:
    """ROUNDS reservations, each committed, released or abandoned, every operation repeated at random."""
    for round_ in range(ROUNDS):
        tenant = rng.choice(TENANTS)
        # Half the reservers go through the tenant's partition owner, half to any replica: both race.
        key = tenant if n % 2 else None
        task = f"w{n}-{round_}"
        rid = f"r-{task}"
        action = rng.choices(("commit", "release", "abandon"), (6, 3, 1))[0]
        estimate = rng.randrange(1_000, 40_000)
        ask = Reserve(
            tenant=tenant,
            task_id=task,
            estimate_micro_usd=estimate,
            ttl_s=1.0 if action == "abandon" else 60.0,
        )
        granted = False
        for _ in range(1 + rng.randrange(3)):
            answer = await persist(functools.partial(bus.calls.request, topics.BUDGET_RESERVE, ask, key=key))
            books.check(answer)
            granted = granted or answer.granted
        books.granted += granted
        books.refused += not granted
        if granted and action != "abandon":
            cost = rng.randrange(0, estimate + 1)
            settle: Commit | Release = (
                Commit(tenant=tenant, reservation_id=rid, usage=Usage(model="unit", input_tokens=cost))
                if action == "commit"
                else Release(tenant=tenant, reservation_id=rid)
            )
            endpoint = topics.BUDGET_COMMIT if action == "commit" else topics.BUDGET_RELEASE
            for _ in range(1 + rng.randrange(3)):
                settled = await persist(functools.partial(bus.calls.request, endpoint, settle, key=key))  # type: ignore[arg-type]
                books.check(settled)
            if action == "commit":
                books.committed[tenant][rid] = cost
        books.rounds_done += 1
        if books.rounds_done >= RESERVERS * ROUNDS // 2:
            books.halfway.set()
        await asyncio.sleep(rng.random() * 0.02)


async def without_holds(bus: Bus, tenant: str, within: float = 10.0) -> LedgerView:
    """The tenant's ledger once no hold is left in it; raises TimeoutError."""
    async with asyncio.timeout(within):
        while True:
            view = await answering(bus, tenant)
            if not view.holds:
                return view
            await asyncio.sleep(0.1)


async def watch_ledgers(bus: Bus, books: Books, stop: asyncio.Event) -> int:
    """Check spent + held <= limit on every ledger revision the KV watch delivers; returns how many."""
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    watcher = await kv.watchall()
    seen = 0
    try:
        while not stop.is_set():
            try:
                entry = await watcher.updates(timeout=0.2)
            except Exception:
                continue
            if entry is None or not entry.value:
                continue
            ledger = codec.decode(Ledger, entry.value)
            seen += 1
            if ledger.spent_micro_usd + ledger.held_micro_usd > ledger.limit_micro_usd:
                books.violations.append(f"revision {entry.revision} of {entry.key} overspends: {ledger}")
    finally:
        await watcher.stop()
    return seen


async def test_three_replicas_two_hundred_reservers_one_killed_never_overspend(
    settings: Settings, tmp_path: Path
) -> None:
    client_settings = settings.with_(request_timeout_s=1.0)
    rng = random.Random(20250314)
    books = Books()
    with budget_replicas(settings, 3, tmp_path) as replicas:
        async with open_bus(client_settings, "reservers") as bus:
            await replicas_answering(bus, 3)
            stop = asyncio.Event()
            watching = asyncio.create_task(watch_ledgers(bus, books, stop))

            async def kill_halfway() -> None:
                await books.halfway.wait()
                replicas[0].send_signal(signal.SIGKILL)

            async with asyncio.timeout(60):
                async with asyncio.TaskGroup() as group:
                    group.create_task(kill_halfway())
                    for n in range(RESERVERS):
                        group.create_task(reserver(bus, n, books, random.Random(rng.random())))
            assert replicas[0].wait(5) == -signal.SIGKILL

            # Abandoned holds (ttl 1 s) are gone once their ttl has passed, whoever touches the ledger.
            views = {tenant: await without_holds(bus, tenant) for tenant in TENANTS}
            stop.set()
            revisions = await watching

    assert not books.violations, books.violations[:5]
    for tenant in TENANTS:
        view = views[tenant]
        assert view.spent_micro_usd == sum(books.committed[tenant].values()), tenant
        assert (view.held_micro_usd, view.holds) == (0, 0)
        assert view.spent_micro_usd <= LIMIT
    assert books.granted and books.refused, (books.granted, books.refused)  # the limits did bite
    assert revisions > 100, revisions
