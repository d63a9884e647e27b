"""What one orchestrator replica does for the whole mesh, and how the other replicas keep it informed.

Any number of orchestrator replicas can fold task events into records: they share one durable consumer, and
every record write is a compare-and-set that folds what it missed from the events stream first, so replicas
that race on a task converge on the stream's order (the leader folds alone while it keeps up:
services/orchestrator/folding.py). Two jobs need one view of every task, though: the
dispatcher (one fair queue; tenant limits counted once) and the gauges of open tasks (running, human). The
replica that holds the leader lease (services/orchestrator/lease.py) does them; the others do not.

The leader hears the events and records of its own replica directly. Each other replica sends it news
(topics.LEADER_NEWS, core NATS) of the tasks it just heard start, be handed off or end, and of the records it
just wrote, gathered for NEWS_LINGER_S. With one replica there is no news at all. A news lost on the way (the
lead changing hands, a reconnect) is made up for: the dispatcher's recount lowers the running counts of tasks
whose end it missed, a task whose start it missed stops taking room ahead of the agents after ack_wait_s, and
the leader reads the records of its open tasks again every RECHECK_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from prometheus_client import Counter, Gauge

from maestro import codec, topics
from maestro.bus import Bus
from maestro.codec import DecodeError
from proto.v1 import LeaderNews, TaskEvent, TaskRecord, Written
from proto.v1.scheduling import WaitingTasks, WaitReasons
from services.orchestrator.dispatch.dispatcher import Dispatcher, SlotNews, news_of
from services.orchestrator.human_queues import HumanQueues
from services.orchestrator.human_queues import seed as seed_humans
from services.orchestrator.open_tasks import written
from services.orchestrator.running import RunningTasks
from services.orchestrator.running import seed as seed_running
from services.orchestrator.store import TaskStore

log = logging.getLogger(__name__)

NEWS_LINGER_S = 0.005
"""How long a replica that does not lead gathers news before it sends them: one message per few milliseconds
of folding, not one per task."""
NEWS_MOST = 2000
"""Most items in one news (far below NATS's largest message)."""
RECHECK_S = 30.0
"""How often the leader reads the records of the tasks it counts open again, in case a news of one closing
was lost."""


async def no_waits(_: WaitingTasks) -> WaitReasons:
    """Without fair dispatch nothing waits for a turn: tasks go to their agents as they come."""
    return WaitReasons()


class _Pending:
    """News gathered and not yet sent."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.freed: list[str] = []
        self.ended: list[str] = []
        self.written: list[Written] = []

    def __len__(self) -> int:
        return len(self.started) + len(self.freed) + len(self.ended) + len(self.written)

    def told(self, news: SlotNews, task_id: str) -> None:
        """Gather what happened to a task, under the field of LeaderNews that carries it."""
        {"started": self.started, "freed": self.freed, "ended": self.ended}[news].append(task_id)

    def news(self) -> LeaderNews:
        return LeaderNews(started=self.started, freed=self.freed, ended=self.ended, written=self.written)


class Leadership:
    """One replica's part: what it does while it leads (lead()), and the news it sends while it does not.

    `dispatching` makes the dispatcher of one tenure (None: fair dispatch is off; only the gauges are led).
    """

    def __init__(
        self,
        bus: Bus,
        store: TaskStore,
        running: RunningTasks,
        humans: HumanQueues,
        dispatching: Callable[[], Dispatcher] | None,
        version: str,
    ) -> None:
        self._bus = bus
        self._leading_gauge = Gauge(
            "maestro_orchestrator_leading",
            "1 while this orchestrator replica leads (runs the dispatcher and the gauges of open tasks), "
            "else 0: the replicas' sum is 1",
            registry=bus.metrics.registry,
        )
        self._news_heard_total = Counter(
            "maestro_leader_news_total",
            "What the leading orchestrator replica heard from the others, by what (started, freed, ended, "
            "written): zero with one replica",
            ["what"],
            registry=bus.metrics.registry,
        )
        self._store = store
        self._running = running
        self._humans = humans
        self._dispatching = dispatching
        self._version = version
        self._subject = topics.LEADER_NEWS.at(topics.token_of(bus.settings.worker))
        self.leading = False
        self.lead_changed = asyncio.Event()
        """Set each time `leading` changes (whoever waits on it clears it)."""
        self.dispatcher: Dispatcher | None = None
        """The dispatcher of this replica's tenure, while it leads and fair dispatch is on."""
        self._pending = _Pending()
        self._sending: asyncio.TimerHandle | None = None
        self._sent: set[asyncio.Task[None]] = set()

    def heard(self, event: TaskEvent) -> None:
        """A task event as this replica's orchestrator hears it, before its record is written."""
        if self.leading:
            if self.dispatcher is not None:
                self.dispatcher.heard(event)
            return
        if self._dispatching is not None and (news := news_of(event)) is not None:
            self._pending.told(news, event.task_id)
            self._gathered()

    def written(self, previous: TaskRecord | None, record: TaskRecord) -> None:
        """A task record this replica's orchestrator just wrote over `previous` (None: created it)."""
        self._humans.changed(previous, record)
        if self.leading:
            self._note(written(record))
        else:
            self._pending.written.append(written(record))
            self._gathered()

    async def lead(self) -> None:
        """Do the leader's jobs until cancelled (the lease was lost) or the bus stops."""
        subscription = await self._bus.nc.subscribe(topics.LEADER_NEWS.all, cb=self._news_heard)
        self.leading = True
        self.lead_changed.set()
        self._leading_gauge.set(1)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(seed_running(self._running, self._store), name="running tasks")
                group.create_task(seed_humans(self._humans, self._store), name="human tasks")
                group.create_task(self._recheck(), name="open tasks recheck")
                waits: Callable[[WaitingTasks], Awaitable[WaitReasons]] = no_waits
                if self._dispatching is not None:
                    self.dispatcher = self._dispatching()
                    group.create_task(self.dispatcher.run(), name="dispatcher")
                    waits = self.dispatcher.waits
                group.create_task(
                    self._bus.calls.serve(
                        topics.DISPATCHER_SERVICE, self._version, [(topics.DISPATCH_WAITS, waits)]
                    ),
                    name="dispatcher's answers",
                )
        finally:
            self.leading = False
            self.lead_changed.set()
            self._leading_gauge.set(0)
            self.dispatcher = None
            self._running.tasks.clear()
            self._humans.open.clear()
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    def _note(self, record: Written) -> None:
        self._running.note(record)
        self._humans.note(record)

    def _gathered(self) -> None:
        if len(self._pending) >= NEWS_MOST:
            self._send()
        elif self._sending is None:
            self._sending = asyncio.get_running_loop().call_later(NEWS_LINGER_S, self._send)

    def _send(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
            self._sending = None
        if not self._pending:
            return
        news, self._pending = self._pending.news(), _Pending()
        task = asyncio.ensure_future(self._bus.streams.notify(self._subject, news))
        self._sent.add(task)
        task.add_done_callback(self._sent_done)

    def _sent_done(self, task: asyncio.Task[None]) -> None:
        self._sent.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("could not send news to the leader (%r): its recount makes up for them", error)

    async def _news_heard(self, msg: Msg) -> None:
        if not self.leading:
            return
        try:
            news = codec.decode(LeaderNews, msg.data)
        except DecodeError as exc:
            log.warning("dropped a news on %s that does not decode: %s", msg.subject, exc)
            return
        told: tuple[tuple[SlotNews, list[str]], ...] = (
            ("started", news.started),
            ("freed", news.freed),
            ("ended", news.ended),
        )
        for what, task_ids in told:
            self._news_heard_total.labels(what).inc(len(task_ids))
            if self.dispatcher is not None:
                for task_id in task_ids:
                    self.dispatcher.told(what, task_id)
        self._news_heard_total.labels("written").inc(len(news.written))
        for record in news.written:
            self._note(record)

    async def _recheck(self) -> None:
        """Read the records of the tasks counted open again, every RECHECK_S."""
        while not self._bus.lifetime.stopping:
            await self._bus.lifetime.sleep(RECHECK_S)
            for task_id in {*self._running.tasks.ids(), *self._humans.open.ids()}:
                try:
                    versioned = await self._store.get(task_id)
                except Exception as exc:
                    log.warning("could not read task %s again (%r)", task_id, exc)
                    continue
                if versioned is not None:
                    self._note(written(versioned.record))
