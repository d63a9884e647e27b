"""Submit a load through the SDK, keep what was acknowledged, then wait for the end and collect the facts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats.errors
from nats.js.errors import NotFoundError

from chaos import effects, streams
from chaos.facts import Facts, LedgerSample, Submission
from maestro import codec, topics
from maestro.client import Client
from maestro.errors import MaestroError, NotFound, RemoteError
from proto.v1 import ROLES, TERMINAL_STATES, LedgerView, SetBudget, TaskRecord, TaskRequest, new_task_id

# Connection trouble while the server or a service is down: the submission is retried under its id.
_TRANSIENT = (nats.errors.Error, TimeoutError, ConnectionError)
_RETRY_S = 0.5
_POLL_S = 0.5
_SAMPLE_S = 0.25
_DRAIN_S = 15.0
_READERS = 64
# Built from parts so that this file itself carries no credential-shaped string.
PLANTED_KEY = "AKIA" + "Z7QW3RT5YU2IOP4L"


@dataclass(frozen=True)
class Planned:
    """A request to submit and what is expected of it."""

    request: TaskRequest
    effect: bool = False
    must_run: bool = True


@dataclass
class Load:
    """Submits requests and records each one the server acknowledged."""

    client: Client
    effects_file: Path
    patience_s: float = 30.0
    """How long one submission is retried while the server does not acknowledge it."""
    in_flight: int = 256
    logs: Path | None = None
    """Where every process of the mesh logs, scanned for the planted credential at the end."""
    facts: Facts = field(default_factory=Facts)
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    _done: int = 0
    _finished: bool = False

    def tester(
        self, tenant: str, *, sleep_s: float = 0.0, task_id: str | None = None, prompt: str = "Run the check"
    ) -> Planned:
        """A tester task whose one command records its execution in the effects file."""
        task_id = task_id or new_task_id()
        command = effects.command(task_id, self.effects_file, sleep_s=sleep_s)
        request = TaskRequest(id=task_id, tenant=tenant, role="tester", prompt=prompt, commands=[command])
        return Planned(request, effect=True)

    def refused(self, tenant: str) -> Planned:
        """A tester task whose prompt carries a credential: the guard must reject it, so it never runs."""
        planned = self.tester(tenant, prompt=f"Run the check with key {PLANTED_KEY}")
        return Planned(planned.request, effect=True, must_run=False)

    async def submit(self, planned: Planned) -> bool:
        """Submit until the server acknowledges (or patience runs out, or the SDK refuses it); whether the
        server acknowledged it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.patience_s
        request = planned.request
        submission = Submission(request.id, request.tenant, request.role, planned.effect, planned.must_run)
        try:
            while True:
                try:
                    await self.client.submit(request)
                    break
                except _TRANSIENT:
                    if loop.time() > deadline:
                        self.facts.unacknowledged += 1
                        return False
                    await asyncio.sleep(_RETRY_S)
                except MaestroError as exc:
                    self.facts.refusals.append((submission, str(exc)))
                    return False
            self.facts.submissions.append(submission)
            return True
        finally:
            async with self._progress:
                self._done += 1
                self._progress.notify_all()

    async def until(self, count: int) -> None:
        """Wait until `count` submissions have been answered (acknowledged or given up), or the steady load
        has submitted everything it had."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._done >= count or self._finished)

    async def done(self) -> None:
        """Wait until the steady load has submitted everything it had."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._finished)

    @property
    def finished(self) -> bool:
        """Whether the steady load has submitted everything it had."""
        return self._finished

    @property
    def answered(self) -> int:
        """Submissions answered so far (acknowledged or given up)."""
        return self._done

    async def steady(self, planned: Sequence[Planned], rate: float | None) -> None:
        """Submit everything at `rate` per second (None: as fast as the client can), a bounded number
        waiting for their acknowledgement at once."""
        slots = asyncio.Semaphore(self.in_flight)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(item: Planned) -> None:
            try:
                await self.submit(item)
            finally:
                slots.release()

        try:
            async with asyncio.TaskGroup() as group:
                for n, item in enumerate(planned):
                    if rate is not None:
                        delay = start + n / rate - loop.time()
                        if delay > 0:
                            await asyncio.sleep(delay)  # pacing the rate, not waiting for anything
                    await slots.acquire()
                    group.create_task(one(item))
        finally:
            async with self._progress:
                self._finished = True
                self._progress.notify_all()

    async def settle(self, tenants: Iterable[str], *, within: float) -> None:
        """Wait (up to `within` s) for every acknowledged task to end and then (up to 15 s) for the
        consumers to drain; then collect records, events, executions and ledgers into the facts."""
        ids = list(self.facts.tasks())
        self.facts.records = await converge(self.client, ids, within=within)
        # A redelivery still to come could run a task again: the effects are read once nothing is left.
        self.facts.backlog = await drained(self.client, within=_DRAIN_S)
        self.facts.events, _ = await streams.task_events(self.client.bus.js)
        self.facts.executions, self.facts.unreadable_effects = effects.read(self.effects_file)
        names = set(tenants) | {s.tenant for s in self.facts.submissions}
        self.facts.ledgers = {t: v for t in sorted(names) if (v := await ledger(self.client, t)) is not None}
        self.facts.leaks = await self._leaks()

    async def _leaks(self) -> list[str]:
        key = PLANTED_KEY.encode()
        found = []
        if any(key in codec.encode(r) for r in self.facts.records.values()):
            found.append("a record")
        if any(key in codec.encode(e.event) for events in self.facts.events.values() for e in events):
            found.append("an event")
        letters = await streams.dead_letters(self.client.bus.js)
        if any(key in codec.encode(letter) or key in letter.data for letter in letters):
            found.append("a dead letter")
        if self.logs is not None and await asyncio.to_thread(_holds, self.logs, key):
            found.append(f"the logs ({self.logs.name})")
        return found


def _holds(path: Path, needle: bytes) -> bool:
    try:
        return needle in path.read_bytes()
    except FileNotFoundError:
        return False


async def _read(client: Client, task_id: str) -> TaskRecord | None:
    try:
        return await client.get(task_id)
    except NotFound:
        return None


async def records(client: Client, ids: Sequence[str]) -> dict[str, TaskRecord]:
    """The current record of each task that has one."""
    slots = asyncio.Semaphore(_READERS)

    async def one(task_id: str) -> TaskRecord | None:
        async with slots:
            return await _read(client, task_id)

    found = await asyncio.gather(*(one(i) for i in ids))
    return {i: r for i, r in zip(ids, found, strict=True) if r is not None}


async def converge(client: Client, ids: Sequence[str], *, within: float) -> dict[str, TaskRecord]:
    """Every task's record once all are terminal, or as they are when `within` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    found: dict[str, TaskRecord] = {}
    waiting = list(ids)
    while True:
        try:
            found.update(await records(client, waiting))
        except _TRANSIENT:
            pass  # the server is coming back; ask again
        waiting = [i for i in waiting if i not in found or found[i].state not in TERMINAL_STATES]
        if not waiting or loop.time() > deadline:
            return found
        await asyncio.sleep(_POLL_S)


async def ledger(client: Client, tenant: str, *, within: float = 15.0) -> LedgerView | None:
    """A tenant's ledger, asked until the budget answers (None when it never does)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await client.ledger(tenant)
        except (RemoteError, *_TRANSIENT):
            if loop.time() > deadline:
                return None
            await asyncio.sleep(_RETRY_S)


_PIPELINE = (
    (topics.STREAM_REQUESTS, topics.DURABLE_GUARD),
    *((topics.STREAM_TASKS, topics.agents_durable(role)) for role in ROLES),
    (topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR),
)


async def backlog(client: Client) -> dict[str, str] | None:
    """What the guard, the dispatcher, each role's agents and the orchestrator still have to do: durable ->
    `n pending, m unacknowledged`, busy ones only (None when the server cannot say now)."""
    found = {}
    try:
        for stream, durable in _PIPELINE:
            try:
                info = await client.bus.js.consumer_info(stream, durable)
            except NotFoundError:
                continue  # nobody serves that role
            if info.num_pending or info.num_ack_pending:
                found[durable] = f"{info.num_pending} pending, {info.num_ack_pending} unacknowledged"
        waiting = (await client.bus.js.stream_info(topics.STREAM_WAITING)).state.messages
        if waiting:
            found["dispatcher"] = f"{waiting} waiting for their turn"
    except (NotFoundError, *_TRANSIENT):
        return None
    return found


async def drained(client: Client, *, within: float = 30.0) -> dict[str, str]:
    """Wait until the guard, the agents and the orchestrator have nothing pending or unacknowledged (twice
    in a row, so nothing was in between); what they still had when `within` seconds ran out ({}: nothing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    idle = 0
    left: dict[str, str] | None = None
    while idle < 2:
        left = await backlog(client)
        idle = idle + 1 if left == {} else 0
        if idle < 2 and loop.time() > deadline:
            return left or {"(server)": "did not answer"}
        await asyncio.sleep(_POLL_S)
    return {}


async def budget_ready(client: Client, *, within: float = 30.0) -> None:
    """Wait until the budget answers, so that the first tasks are not held back by its start-up."""
    if await ledger(client, "chaos-probe", within=within) is None:
        raise TimeoutError(f"the budget service did not answer within {within:.0f}s")


async def set_limit(client: Client, tenant: str, limit_micro_usd: int) -> LedgerView:
    """Set a tenant's budget limit through the budget's set endpoint."""
    return await client.bus.calls.request(
        topics.BUDGET_SET, SetBudget(tenant=tenant, limit_micro_usd=limit_micro_usd), key=tenant
    )


@asynccontextmanager
async def sampling_ledgers(client: Client, tenants: Sequence[str], facts: Facts) -> AsyncIterator[None]:
    """Read the tenants' ledgers every quarter second for the length of a block (an outage is skipped)."""
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            for tenant in tenants:
                try:
                    view = await client.ledger(tenant)
                except (RemoteError, *_TRANSIENT):
                    continue
                facts.samples.append(LedgerSample.of(view, time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _SAMPLE_S)

    async with asyncio.TaskGroup() as group:
        group.create_task(sample(), name="ledger-samples")
        try:
            yield
        finally:
            stop.set()
