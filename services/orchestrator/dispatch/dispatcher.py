"""The dispatcher: hands the tasks waiting in the waiting stream to their role's agents, in the order the fair
queue picks, no faster than the agents start them.

It hears of each waiting task as it is stored (an ordered consumer that starts from the first waiting task,
so a restart finds every one again) and keeps its place in the queue and, up to MEMORY_BYTES in all, its
body; a task past that is read back by sequence when its turn comes. Handing one over stores it on the role's
tasks subject for its tenant (dedup id: its waiting sequence, so a dispatcher that restarts before the next
step hands nothing over twice), sent without asking the server for an answer (an ack per task was a third of
what fair dispatch added to a task's messages); the task stays in the waiting stream until it is heard to
start (or end), and one not heard to start within CHECK_S is handed over again, this time acked: stored
already, the copy is dropped as a duplicate; lost on the way, it is stored now. Either way it is then deleted
from the waiting stream, as a task handed over with an ack is at once. Tasks that were waiting already when
this dispatcher began are handed over with an ack, since a predecessor may have handed them over before.

Per role, no more tasks are handed over and not ended than the role's live agents have slots (they announce
them in the workers bucket), and at most `ahead` of them not yet started: a task that arrives behind a
backlog waits for the next free slot and the fair queue's turn, never behind a queue of others' tasks
already handed to the agents. A tenant's running count (what its limits hold) is what it has
handed over and not ended; after a restart, and every few seconds while a limit holds tasks back, it is
read again from the server: the tasks stored on its role's subjects (each kept until its agent is done).

One dispatcher serves a mesh: it runs in the orchestrator replica that leads, one dispatcher per tenure,
and hears every task event that replica folds and, as news, those the others fold
(services/orchestrator/leading.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import nats.errors
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy, PubAck
from nats.js.errors import KeyNotFoundError
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import RemoteError
from maestro.following import follow_key, follow_keys
from maestro.pulling import delivered_and_sequence
from maestro.streams import Relayed
from maestro.topology import WORKER_TTL_S, ensure_backlog
from proto.v1 import (
    ENDING_EVENTS,
    PRIORITIES,
    ROLES,
    Failed,
    HandedOff,
    Started,
    TaskAssignment,
    TaskEvent,
)
from proto.v1.scheduling import WaitingTasks, WaitReasons
from services.orchestrator.dispatch.capacity import Capacity
from services.orchestrator.dispatch.clearance import Clearance
from services.orchestrator.dispatch.fair import FairQueue, Waiting
from services.orchestrator.dispatch.shares import Shares

log = logging.getLogger(__name__)

RESYNC_S = 5.0
"""How often the running counts are read again from the server while a running limit holds tasks back."""
MEMORY_BYTES = 64 * 1024 * 1024
"""Waiting tasks' bodies kept as they arrive, so that handing one over needs no read; past this many bytes a
task keeps only its place and is read back by sequence when its turn comes."""
WAITING_HEARTBEAT_S = 1.0
"""The heartbeat of the ordered consumer reading the waiting stream. nats-py makes the consumer again once two
heartbeats are missed in a row. With its default of 5 s, tasks queued after a nats-server restart waited about
18 s before they were handed over; with 1 s, they wait 2 to 4 s, for one heartbeat a second when idle."""
CHECK_S = 5.0
"""How long a task handed over without an ack may go unheard of (no Started) before it is handed over again
with one: well past the time an agent with a free slot takes to start it, well within the server's dedup
window (MAESTRO_DUPLICATE_WINDOW_S, 120 s), so that the copy of a task that was stored is dropped."""
RETRY_S = 1.0
"""How long a task whose hand-over failed (the server did not answer) waits before it is tried again."""
PURGE_LINGER_S = 0.1
"""How long the hand-overs of a subject gather before one purge deletes them all from the waiting stream: a
purge per task (as the agents free slots one at a time, most rounds hand over one) cost the server and the
dispatcher a request each. A restart meanwhile hands those tasks over again, as duplicates that are
dropped."""


@dataclass(frozen=True)
class DispatchMetrics:
    """How long tasks waited for their turn (per role, priority and tenant), and how many wait now (the queue
    of the dispatcher that runs, read at each scrape: none while this replica does not lead)."""

    waited: Histogram
    depth: _Depth

    @classmethod
    def create(
        cls, registry: CollectorRegistry, clock: Callable[[], float], tenant_label: Callable[[str], str]
    ) -> DispatchMetrics:
        """Register the dispatcher's metrics on `registry`; tenants are named by `tenant_label` (bounded:
        maestro/tenant_labels.py)."""
        depth = _Depth(clock, tenant_label)
        registry.register(depth)
        return cls(
            depth=depth,
            waited=Histogram(
                "maestro_dispatch_wait_seconds",
                "Time from a task's arrival in the waiting stream to its hand-over to its role's agents",
                ["role", "priority", "tenant"],
                buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800),
                registry=registry,
            ),
        )


class _Depth(Collector):
    """Tasks waiting and the oldest one's age, per role, priority and tenant, as the queue of the dispatcher
    that runs has them now."""

    def __init__(self, clock: Callable[[], float], tenant_label: Callable[[str], str]) -> None:
        self.queue: FairQueue | None = None
        self._clock = clock
        self._tenant_label = tenant_label

    def collect(self) -> Iterator[Metric]:
        labels = ["role", "priority", "tenant"]
        depth = GaugeMetricFamily("maestro_dispatch_waiting", "Tasks waiting for their turn", labels=labels)
        oldest = GaugeMetricFamily(
            "maestro_dispatch_oldest_wait_seconds",
            "How long the oldest waiting task has waited",
            labels=labels,
        )
        now = self._clock()
        # Tenants past the named ones share a label: their counts add up, the oldest of them shows.
        labelled: dict[tuple[str, str, str], tuple[int, float]] = {}
        depths = self.queue.depth() if self.queue is not None else {}
        for (role, priority, tenant), (count, since) in depths.items():
            key = (role, str(priority), self._tenant_label(tenant))
            before, earliest = labelled.get(key, (0, since))
            labelled[key] = (before + count, min(earliest, since))
        for key, (count, since) in labelled.items():
            depth.add_metric(list(key), count)
            oldest.add_metric(list(key), now - since)
        yield depth
        yield oldest


class Bodies:
    """The bodies (and trace context) of waiting tasks by sequence, up to a number of bytes in all."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._used = 0
        self._kept: dict[int, tuple[bytes, str | None]] = {}

    def keep(self, seq: int, data: bytes, traceparent: str | None) -> None:
        """Keep one, if there is room."""
        if self._used + len(data) <= self._capacity:
            self._kept[seq] = (data, traceparent)
            self._used += len(data)

    def take(self, seq: int) -> tuple[bytes, str | None] | None:
        """Hand one out and forget it; None when it was not kept."""
        kept = self._kept.pop(seq, None)
        if kept is not None:
            self._used -= len(kept[0])
        return kept

    def drop(self, seq: int) -> None:
        """Forget one."""
        self.take(seq)


@dataclass
class _Handed:
    """A task this dispatcher handed over and has not heard the end of."""

    task: Waiting
    confirm_at: float | None = None
    """While its hand-over went without an ack and it has not been heard to start: when to hand it over again
    with one (its place in the waiting stream is kept until then); None once that is settled."""


class Dispatcher:
    """Hands waiting tasks over as the fair queue picks them; told of every task event by the orchestrator."""

    def __init__(
        self,
        bus: Bus,
        shares: Shares,
        metrics: DispatchMetrics,
        *,
        ahead: int,
        clock: Callable[[], float] = time.monotonic,
        memory_bytes: int = MEMORY_BYTES,
        tenant_label: Callable[[str], str] = str,
        resync_s: float = RESYNC_S,
        check_s: float = CHECK_S,
    ) -> None:
        self._bus = bus
        self._resync_s = resync_s
        self._check_s = check_s
        self._acked_through = 0
        """Waiting sequences up to this one were stored before this dispatcher began: a predecessor may have
        handed them over, so their hand-overs are acked (a duplicate then says so, not counted twice)."""
        self.recounts = 0
        """How many recounts of the running tasks were made (or tried) while a limit held tasks back."""
        self._shares = shares
        self._clock = clock
        self._ahead = ahead
        self.queue = FairQueue(shares.of)
        self._metrics = metrics
        self._tenant_label = tenant_label
        self._waiting: dict[str, int] = {}
        """Task id -> its waiting sequence."""
        self._task_at: dict[int, str] = {}
        """Waiting sequence -> its task id."""
        self._handed: dict[str, _Handed] = {}
        self._unstarted: defaultdict[str, dict[str, float]] = defaultdict(dict)
        """Per role: tasks handed over and not started yet, with when."""
        self._storing: Counter[tuple[str, str]] = Counter()
        """Per role and tenant: hand-overs not yet stored on the tasks subject."""
        self._bodies = Bodies(memory_bytes)
        self._clearance = Clearance()
        self._capacity = Capacity(WORKER_TTL_S)
        self._purging: set[str] = set()
        self._wake = asyncio.Event()
        self._held = False
        self._resyncing = False
        self._effects: set[asyncio.Task[None]] = set()
        self._waited_children: dict[tuple[str, int, str], Histogram] = {}
        self._deferred: set[int] = set()
        """Waiting sequences of the tasks whose hold is made when they are handed over."""
        self._retrying: dict[str, str] = {}
        """Tasks whose hand-over failed, put back in the queue shortly, with why (for `waits`)."""
        self._taken_over = False
        """Whether this dispatcher took over from whoever dispatched before: its rate buckets start from their
        last hand-over, and its running counts were read from the server. Until then it hands nothing over
        (run() waits for the first resync), so a take-over the server did not finish is simply made again."""

    async def waits(self, asked: WaitingTasks) -> WaitReasons:
        """Why each task asked about still waits for its turn (those that do not wait are left out)."""
        now = self._clock()
        reasons = {
            task_id: why
            for task_id in asked.task_ids
            if (why := self._retrying.get(task_id))
            or ((seq := self._waiting.get(task_id)) is not None and (why := self.queue.why(seq, now)))
        }
        return WaitReasons(reasons=reasons)

    def unconfirmed(self) -> list[str]:
        """The tasks handed over without an ack and not yet heard to start (nor confirmed since)."""
        return [task_id for task_id, handed in self._handed.items() if handed.confirm_at is not None]

    def heard(self, event: TaskEvent) -> None:
        """Take note of a task event as it arrives (what news_of() says of it; others change nothing)."""
        if (news := news_of(event)) is not None:
            self.told(news, event.task_id)

    def told(self, news: SlotNews, task_id: str) -> None:
        """Take note of what happened to a task: started(), freed() or ended()."""
        {"started": self.started, "freed": self.freed, "ended": self.ended}[news](task_id)

    def started(self, task_id: str) -> None:
        """A task's agent started it: that frees room ahead of the agents."""
        handed = self._handed.get(task_id)
        if handed is None:
            return
        self._settle(handed)
        if self._unstarted[handed.task.role].pop(task_id, None) is not None:
            self._wake.set()

    def freed(self, task_id: str) -> None:
        """A task was handed off to a person: its agent's slot and its tenant's running slot are free."""
        if (handed := self._handed.get(task_id)) is not None:
            self._settle(handed)
        self._release(task_id)

    def ended(self, task_id: str) -> None:
        """A task ended: that frees its tenant's running slot, or takes it out of the queue if it ended while
        it waited."""
        if (handed := self._handed.get(task_id)) is not None:
            self._settle(handed)
        if not self._release(task_id):
            if self._retrying.pop(task_id, None) is not None:
                return  # about to be put back in the queue: it will not be (_wait_again)
            if (seq := self._waiting.pop(task_id, None)) is not None:
                # Ended while it waited (cancelled, timed out): nobody needs it handed over any more.
                self._task_at.pop(seq, None)
                self._deferred.discard(seq)
                removed = self.queue.remove(seq)
                self._bodies.drop(seq)
                if removed is not None:
                    self._clearance.closed(_subject_of(removed), seq, handed=False)
                self._spawn(self._delete(seq))

    async def run(self) -> None:
        """Hand tasks over until the bus stops, or until cancelled (its replica no longer leads): then what it
        was doing on the side (purges, deletions) is dropped, for the next dispatcher to do again."""
        self._metrics.depth.queue = self.queue
        await ensure_backlog(self._bus.js)  # what autoscalers read: each role's tasks waiting here
        self._acked_through = (await self._bus.js.stream_info(topics.STREAM_WAITING)).state.last_seq
        subscription = await self._bus.js.subscribe(
            topics.WAITING.all,
            stream=topics.STREAM_WAITING,
            cb=self._arrived,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            pending_msgs_limit=-1,
            idle_heartbeat=WAITING_HEARTBEAT_S,
        )
        policy = await self._bus.js.key_value(topics.BUCKET_POLICY)
        background: list[asyncio.Task[None]] = []
        try:
            with contextlib.suppress(KeyNotFoundError):
                entry = await policy.get(topics.POLICY_BUNDLE_KEY)
                self._shares.offer(entry.value, entry.revision or 0)
            stopping = self._bus.lifetime.stop_event
            background.append(
                asyncio.create_task(
                    follow_key(policy, topics.POLICY_BUNDLE_KEY, self._shares.offer, stopping)
                )
            )
            workers = await self._bus.js.key_value(topics.BUCKET_WORKERS)
            background.append(asyncio.create_task(follow_keys(workers, ">", self._worker_heard, stopping)))
            while not await self._resynced() and not self._bus.lifetime.stopping:
                await self._bus.lifetime.sleep(1.0)
            background.append(asyncio.create_task(self._refresh_counts()))
            background.append(asyncio.create_task(self._confirm_unheard()))
            background.append(asyncio.create_task(self._wake_when_stopped()))
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._bus.lifetime.stopping:
                    break
                # Handed over in one batch, awaited here: what comes free meanwhile goes in the next batch.
                if handing := self._round():
                    await self._hand_over(handing)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await subscription.unsubscribe()
            if self._metrics.depth.queue is self.queue:
                self._metrics.depth.queue = None
            if self._effects and not self._bus.lifetime.stopping:
                for effect in self._effects:
                    effect.cancel()
            if self._effects:
                await asyncio.wait(self._effects)

    def _worker_heard(self, key: str, value: bytes | None, _: int) -> None:
        self._capacity.offer(key, value, self._clock())
        self._wake.set()

    async def _wake_when_stopped(self) -> None:
        await self._bus.lifetime.stopped()
        self._wake.set()

    async def _arrived(self, msg: Msg) -> None:
        _, seq = delivered_and_sequence(msg.reply)
        task_id = (msg.headers or {}).get(topics.HEADER_MSG_ID) or f"seq-{seq}"
        where = _place(msg.subject)
        if where is None:
            self._spawn(self._refuse(msg.subject, seq, task_id))
            return
        role, priority, tenant = where
        if task_id in self._waiting or task_id in self._handed:
            return  # already here (a resend of the guard's that came after the dedup window)
        if self.queue.add(Waiting(seq=seq, role=role, priority=priority, tenant=tenant, since=self._clock())):
            self._waiting[task_id], self._task_at[seq] = seq, task_id
            if (msg.headers or {}).get(topics.HEADER_DEFERRED_HOLD):
                self._deferred.add(seq)
            self._bodies.keep(seq, msg.data, (msg.headers or {}).get(topics.HEADER_TRACEPARENT))
            self._clearance.opened(msg.subject, seq)
            self._wake.set()

    def _round(self) -> list[tuple[Waiting, str]]:
        """What to hand over now, per role, as the queue lets go while there is room ahead of the agents (each
        counted as handed over from here on)."""
        if self._resyncing:
            return []
        now = self._clock()
        wake_at: float | None = None
        handing: list[tuple[Waiting, str]] = []
        for role in list(self.queue.roles()):
            unstarted = self._unstarted[role]
            _forget_older(unstarted, now - self._bus.settings.ack_wait_s)
            slots = self._capacity.slots(role, now)
            free = self._ahead if slots is None else slots - self.queue.running_in(role)
            while len(unstarted) < self._ahead:
                if free <= 0:
                    self._held = True  # every slot taken: read the counts again if that lasts
                    break
                free -= 1
                task = self.queue.next(role, now)
                if task is None:
                    at = self.queue.wake_at(role, now)
                    if at is None:
                        self._held = True
                    else:
                        wake_at = at if wake_at is None else min(wake_at, at)
                    break
                task_id = self._task_at.pop(task.seq)
                del self._waiting[task_id]
                self._handed[task_id] = _Handed(task)
                unstarted[task_id] = now
                self._storing[(task.role, task.tenant)] += 1
                handing.append((task, task_id))
        if wake_at is not None:
            asyncio.get_running_loop().call_later(max(0.0, wake_at - now), self._wake.set)
        return handing

    async def _hand_over(self, handing: list[tuple[Waiting, str]]) -> None:
        """Store each task on its role's tasks subject for its tenant, all sent before any answer is awaited,
        then have what was handed over purged from the waiting stream; a task the server did not take waits
        again a little later."""
        bodies: list[tuple[bytes, str | None] | Exception | None] = []
        for task, _ in handing:
            try:
                bodies.append(await self._body(task))
            except Exception as exc:
                bodies.append(exc)
        refused: dict[int, str] = {}
        """Per waiting sequence: why the budget would not make the task's deferred hold."""
        deferred = [
            (n, task)
            for n, ((task, _), body) in enumerate(zip(handing, bodies, strict=True))
            if isinstance(body, tuple) and task.seq in self._deferred
        ]
        if deferred:
            held = await asyncio.gather(*(self._hold(bodies[n]) for n, _ in deferred))
            for (n, task), answer in zip(deferred, held, strict=True):
                if isinstance(answer, Exception):
                    bodies[n] = answer  # no answer, or no room yet: it waits again
                elif answer is not None:
                    refused[task.seq] = answer
                    bodies[n] = None
                else:
                    self._deferred.discard(task.seq)
        sending = [
            (task_id, _relayed(task, body), task.seq <= self._acked_through)
            for (task, task_id), body in zip(handing, bodies, strict=True)
            if isinstance(body, tuple)
        ]
        unacked = [(task_id, relay) for task_id, relay, acked in sending if not acked]
        with_acks = [relay for _, relay, acked in sending if acked]
        confirm_at = self._clock() + self._check_s
        pending: set[str] = set()  # whose place in the waiting stream goes once heard to start (or confirmed)
        for task_id, _ in unacked:
            # Before it is sent: its Started may be heard before the sending returns.
            if (handed := self._handed.get(task_id)) is not None:
                handed.confirm_at = confirm_at
                pending.add(task_id)
        try:
            unanswered = iter(await self._bus.streams.send_all([relay for _, relay in unacked]))
            answered = iter(await self._bus.streams.relay_all(with_acks))
        finally:
            for task, _ in handing:
                self._storing[(task.role, task.tenant)] -= 1
        acks: Iterator[PubAck | Exception | _Unanswered] = (
            next(answered) if acked else (next(unanswered) or _SENT) for _, _, acked in sending
        )
        again: list[tuple[Waiting, str]] = []
        subjects: set[str] = set()
        for (task, task_id), body in zip(handing, bodies, strict=True):
            if task.seq in refused:
                self._release(task_id)
                self._deferred.discard(task.seq)
                self._clearance.closed(_subject_of(task), task.seq, handed=False)
                self._spawn(self._refuse_hold(task, task_id, refused[task.seq]))
                continue
            ack = next(acks) if isinstance(body, tuple) else body
            if isinstance(ack, _Unanswered):
                self._waited(task).observe(self._clock() - task.since)
                if task_id not in pending:
                    # It ended while its hand-over was made ready: nobody will hear it start.
                    self._clear(task)
                continue  # its place in the waiting stream is kept until it is heard to start
            if isinstance(ack, Exception):
                # Not sent (or not stored): it waits again, and keeps its place in the waiting stream.
                if (handed := self._handed.get(task_id)) is not None:
                    handed.confirm_at = None
                if not self._bus.lifetime.stopping:
                    if isinstance(ack, RemoteError) and ack.code == 429:
                        self._retrying[task_id] = f"waiting for room for its hold: {ack.description}"
                    else:
                        self._retrying[task_id] = "its hand-over failed; it is tried again shortly"
                        log.warning(
                            "handing over task %s failed (%r); it waits again",
                            task_id,
                            ack,
                            extra={"task_id": task_id},
                        )
                    self._release(task_id)
                    again.append((task, task_id))
                continue
            if ack is None or ack.duplicate:
                # Gone (it ended while waiting), or handed over before a restart: then the count read from the
                # server holds it already.
                self._release(task_id)
            subject = _subject_of(task)
            self._clearance.closed(subject, task.seq, handed=ack is not None)
            if ack is not None:
                self._waited(task).observe(self._clock() - task.since)
                subjects.add(subject)
        for subject in subjects:
            self._purge_soon(subject)
        if again:
            self._spawn(self._wait_again(again))

    def _settle(self, handed: _Handed) -> None:
        """A task handed over without an ack was heard to start or end, or its hand-over was confirmed:
        its place in the waiting stream goes."""
        if handed.confirm_at is None:
            return
        handed.confirm_at = None
        self._clear(handed.task)

    def _clear(self, task: Waiting) -> None:
        """A handed-over task's place in the waiting stream may go: purged soon with its subject's others."""
        subject = _subject_of(task)
        self._clearance.closed(subject, task.seq, handed=True)
        self._purge_soon(subject)

    def _purge_soon(self, subject: str) -> None:
        """Have what was handed over from `subject` purged once the hand-overs of PURGE_LINGER_S gathered
        (one purge at a time per subject)."""
        if subject not in self._purging:
            self._purging.add(subject)
            self._spawn(self._purge(subject))

    async def _confirm_unheard(self) -> None:
        """Every CHECK_S: hand over again, acked, each task handed over without an ack and not heard to start
        since; once the server has it (stored now, or a duplicate of the copy it stored), it is settled."""
        while not self._bus.lifetime.stopping:
            await self._bus.lifetime.sleep(self._check_s)
            now = self._clock()
            due = [h for h in self._handed.values() if h.confirm_at is not None and h.confirm_at <= now]
            sent: list[tuple[_Handed, Relayed]] = []
            for handed in due:
                try:
                    body = await self._body(handed.task)
                except Exception as exc:
                    log.warning("reading back waiting task %d failed (%r)", handed.task.seq, exc)
                    continue  # tried again next time
                if body is None:
                    self._settle(handed)  # gone from the waiting stream: nothing to hand over again
                else:
                    sent.append((handed, _relayed(handed.task, body)))
            acks = await self._bus.streams.relay_all([relay for _, relay in sent])
            for (handed, _), ack in zip(sent, acks, strict=True):
                if isinstance(ack, Exception):
                    handed.confirm_at = now + self._check_s  # no answer: tried again next time
                else:
                    self._settle(handed)

    async def _wait_again(self, tasks: list[tuple[Waiting, str]]) -> None:
        """Put tasks whose hand-over failed back in the queue a little later."""
        await self._bus.lifetime.sleep(RETRY_S)
        for task, task_id in tasks:
            if self._retrying.pop(task_id, None) is None:
                # Ended meanwhile: nobody needs it handed over any more.
                self._deferred.discard(task.seq)
                self._clearance.closed(_subject_of(task), task.seq, handed=False)
                self._spawn(self._delete(task.seq))
            elif self.queue.add(task):
                self._waiting[task_id], self._task_at[task.seq] = task.seq, task_id
        self._wake.set()

    async def _hold(self, body: tuple[bytes, str | None] | Exception | None) -> str | Exception | None:
        """Make the hold a waiting task's assignment defers to its hand-over (the budget had no room for it
        at admission): None once it is held, why the budget refused it, or the error that stopped it (no
        answer, still no room)."""
        assert isinstance(body, tuple)
        try:
            hold = codec.decode(TaskAssignment, body[0]).deferred
            if hold is None:
                return None
            reservation = await self._bus.calls.request(topics.BUDGET_RESERVE, hold, key=hold.tenant)
        except RemoteError as exc:
            return exc.description if exc.code == 400 else exc
        except Exception as exc:
            return exc
        return None if reservation.granted else reservation.reason

    async def _refuse_hold(self, task: Waiting, task_id: str, why: str) -> None:
        """End a task whose deferred hold the budget refused for lack of money, as failed (`budget`), and
        delete it from the waiting stream."""
        failed = Failed(
            task_id=task_id,
            tenant=task.tenant,
            at=datetime.now(UTC),
            error=f"the budget cannot hold it now that its turn has come: {why}",
            failure="budget",
        )
        publish = functools.partial(
            self._bus.streams.publish,
            topics.EVENTS.at(task.tenant, task_id),
            failed,
            msg_id=topics.end_msg_id(task_id),
        )
        if await self._until_done(f"ending task {task_id} the budget would not hold", publish):
            await self._delete(task.seq)

    async def _body(self, task: Waiting) -> tuple[bytes, str | None] | None:
        """A waiting task's body and trace context: kept since it arrived, else read back by sequence; None
        when it is gone from the waiting stream."""
        kept = self._bodies.take(task.seq)
        if kept is not None:
            return kept
        read = await self._bus.streams.read(topics.STREAM_WAITING, task.seq)
        return None if read is None else (read.data, read.headers.get(topics.HEADER_TRACEPARENT))

    def _waited(self, task: Waiting) -> Histogram:
        """The wait-time histogram of the task's role, priority and tenant (looked up once per label set)."""
        key = (task.role, task.priority, task.tenant)
        child = self._waited_children.get(key)
        if child is None:
            child = self._metrics.waited.labels(
                task.role, str(task.priority), self._tenant_label(task.tenant)
            )
            self._waited_children[key] = child
        return child

    async def _purge(self, subject: str) -> None:
        """Delete what was handed over from `subject` in the waiting stream, one purge for every hand-over
        finished within PURGE_LINGER_S (until they are gone, a restart would hand them over again, and those
        copies would be dropped, or not run twice)."""
        streams = self._bus.streams
        try:
            while True:
                await self._bus.lifetime.sleep(PURGE_LINGER_S)
                if self._bus.lifetime.stopping or (below := self._clearance.bound(subject)) is None:
                    return
                purge = functools.partial(streams.purge, topics.STREAM_WAITING, subject, below)
                if not await self._until_done(f"purging {subject} below {below}", purge):
                    return
                self._clearance.purged(subject, below)
        finally:
            self._purging.discard(subject)

    async def _delete(self, seq: int) -> None:
        """Delete a waiting task that will never be handed over (it ended while it waited, or was
        dead-lettered), lest a restart find it again."""
        delete = functools.partial(self._bus.streams.delete, topics.STREAM_WAITING, seq)
        await self._until_done(f"deleting waiting task at {seq}", delete)

    async def _until_done(self, what: str, effect: Callable[[], Awaitable[object]]) -> bool:
        """Run `effect` until it succeeds (True) or the bus stops (False): the server may not answer for a
        while, and each failure is logged and tried again after RETRY_S."""
        while not self._bus.lifetime.stopping:
            try:
                await effect()
                return True
            except Exception as exc:
                log.warning("%s failed (%r); trying again", what, exc)
                await self._bus.lifetime.sleep(RETRY_S)
        return False

    def _release(self, task_id: str) -> bool:
        """Free what a task handed over took (its tenant's running slot, its room ahead of the agents);
        False when it was not handed over by this dispatcher, or was released already."""
        handed = self._handed.pop(task_id, None)
        if handed is None:
            return False
        self._unstarted[handed.task.role].pop(task_id, None)
        self.queue.finished(handed.task.role, handed.task.tenant)
        self._wake.set()
        return True

    async def _refuse(self, subject: str, seq: int, task_id: str) -> None:
        """A waiting task on a subject that names no role or priority: dead-lettered, never handed over."""
        stored = await self._bus.streams.read(topics.STREAM_WAITING, seq)
        if stored is not None:
            await self._bus.streams.dead_letter(
                "dispatcher",
                subject,
                stored.data,
                f"{subject} names no role and priority 0-9 of a waiting task",
                headers=stored.headers,
                stream_seq=seq,
                msg_id=f"dispatcher.{seq}",
            )
        await self._delete(seq)
        log.warning("dead-lettered waiting task %s stored on %s", task_id, subject)

    async def _refresh_counts(self) -> None:
        while not self._bus.lifetime.stopping:
            await self._bus.lifetime.sleep(self._resync_s)
            if self._held:
                self._held = not await self._resynced()
                self.recounts += 1
                self._wake.set()

    async def _resynced(self) -> bool:
        """_resync(), and whether it could: a server slow to answer (a busy moment, a restart) is no reason
        to stop dispatching with the counts it has; the next try reads them again."""
        try:
            await self._resync()
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("could not read the running counts (%r); trying again", exc)
            return False
        return True

    async def _resync(self) -> None:
        """Read the running counts from the server: what is stored on each role's and tenant's tasks subject,
        plus the hand-overs on their way there.

        The first read, when this dispatcher takes over, gives the counts. Later reads only lower them: they
        take back the tasks handed over before the take-over, whose end this dispatcher cannot match to a
        hand-over of its own, as their agents finish them. They never raise a count, because a task stays
        stored until its agent acks it, and under load that ack can reach the server hundreds of milliseconds
        after the dispatcher heard the task's end: read as running again, those tasks took their slots back
        until the next read, and a role under load got no task for seconds."""
        self._resyncing = True
        try:
            if not self._taken_over:
                await self._take_over_buckets()
            storing = +self._storing
            info = await self._bus.js.stream_info(topics.STREAM_TASKS, subjects_filter=topics.TASKS.all)
            counts: Counter[tuple[str, str]] = Counter()
            for subject, count in (info.state.subjects or {}).items():
                role, tenant = topics.TASKS.values(subject)
                counts[(role, tenant)] += count
            if self._taken_over:
                self.queue.lower_running(counts + storing)
            else:
                self.queue.set_running(counts + storing)
                self._taken_over = True
        finally:
            self._resyncing = False

    async def _take_over_buckets(self) -> None:
        """Start every tenant's rate bucket empty at the last hand-over before this dispatcher (a fresh mesh
        has none: full buckets): one that died a moment ago may just have given a tenant its burst, and the
        tokens it had left died with it."""
        last = await self._bus.streams.last_stored_at(topics.STREAM_TASKS)
        if last is not None:
            ago = max(0.0, (datetime.now(UTC) - last).total_seconds())
            self.queue.empty_buckets_at(self._clock() - ago)

    def _spawn(self, effect: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(effect)
        self._effects.add(task)
        task.add_done_callback(self._effects.discard)


SlotNews = Literal["started", "freed", "ended"]
"""What a task event tells the dispatcher of the room its task takes (the fields of LeaderNews)."""


def news_of(event: TaskEvent) -> SlotNews | None:
    """What the event tells the dispatcher: its task started (room ahead of the agents is free), was handed
    off to a person (its slots are free) or ended; None for any other event."""
    if isinstance(event, Started):
        return "started"
    if isinstance(event, HandedOff):
        return "freed"
    if isinstance(event, ENDING_EVENTS):
        return "ended"
    return None


class _Unanswered:
    """What became of a hand-over sent without an ack: nothing known yet."""


_SENT = _Unanswered()


def _relayed(task: Waiting, body: tuple[bytes, str | None]) -> Relayed:
    """A waiting task's hand-over: stored on its role's tasks subject for its tenant, deduped by its waiting
    sequence."""
    return Relayed(
        topics.TASKS.subject(task.role, task.tenant), body[0], topics.dispatch_msg_id(task.seq), body[1]
    )


def _subject_of(task: Waiting) -> str:
    return topics.WAITING.subject(task.role, str(task.priority), task.tenant)


def _place(subject: str) -> tuple[str, int, str] | None:
    """The role, priority and tenant a waiting subject names, or None when it names no known role and
    priority."""
    try:
        role, priority, tenant = topics.WAITING.values(subject)
    except ValueError:
        return None
    if role not in ROLES or not priority.isdigit() or int(priority) not in PRIORITIES:
        return None
    return role, int(priority), tenant


def _forget_older(unstarted: dict[str, float], than: float) -> None:
    """Drop the tasks handed over before `than` and still not heard to start (their assignment was refused,
    say): they no longer take room ahead of the agents."""
    for task_id in [t for t, at in unstarted.items() if at < than]:
        del unstarted[task_id]
