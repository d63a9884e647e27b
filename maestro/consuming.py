"""Consuming a durable consumer: one standing pull, a handler task per message (or per burst), every
message kept alive while its handler runs and settled by the outcome table (maestro/outcomes.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from maestro import logs, tracing
from maestro.deliveries import BatchHandler, Consumer, DeadLetterHook, Delivery, Handler, delivery_of
from maestro.lifetime import Lifetime
from maestro.outcomes import UNDECODABLE, Outcomes
from maestro.pulling import PullWindow, StandingPull
from maestro.settings import Settings

log = logging.getLogger(__name__)

M = TypeVar("M")

_Dispatch = Callable[[Msg], None]
_InFlight = dict[int, tuple[Msg, float]]
"""Messages whose handler has not settled them yet, by id(msg): the message and when its handler began."""


def shared_config(settings: Settings) -> ConsumerConfig:
    """What every durable consumer Maestro runs is created with (`maestro doctor` checks each against it)."""
    return ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=settings.ack_wait_s,
        # The bus counts deliveries itself and dead-letters the last one, so the server never drops one.
        max_deliver=-1,
    )


class Consumers:
    """Runs handlers on what durable consumers deliver, until the lifetime stops (or cancellation)."""

    def __init__(
        self, nc: Client, js: JetStreamContext, settings: Settings, lifetime: Lifetime, outcomes: Outcomes
    ) -> None:
        self._nc = nc
        self._js = js
        self._settings = settings
        self._lifetime = lifetime
        self._outcomes = outcomes

    async def consume(
        self,
        consumer: Consumer[M],
        handler: Handler[M],
        *,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        """Pull from a durable consumer and run `handler` on each message until stop() or cancellation.

        `on_dead_letter(data, reason, subject)` runs after a message went to the DLQ, so a service can fail
        the task it belonged to when that task is known.
        """

        def dispatch(group: asyncio.TaskGroup, pull: StandingPull, in_flight: _InFlight) -> _Dispatch:
            def each(msg: Msg) -> None:
                group.create_task(self._handle(consumer, handler, msg, pull, in_flight, on_dead_letter))

            return each

        await self._consume(consumer, dispatch)

    async def consume_batches(
        self,
        consumer: Consumer[M],
        handler: BatchHandler[M],
        *,
        on_dead_letter: DeadLetterHook | None = None,
        until: asyncio.Event | None = None,
    ) -> None:
        """As consume(), but `handler` gets every message that arrived together (one task per burst, not
        per message) and answers what became of each: None (ack) or the exception it would have raised,
        settled by the same table. With `until`, it stops (drains and returns) once that is set, instead of
        when the lifetime stops (whoever sets it sets it then too)."""
        loop = asyncio.get_running_loop()

        def dispatch(group: asyncio.TaskGroup, pull: StandingPull, in_flight: _InFlight) -> _Dispatch:
            burst: list[Msg] = []

            def handle_burst() -> None:
                msgs = burst[:]
                burst.clear()
                group.create_task(
                    self._handle_burst(consumer, handler, msgs, pull, in_flight, on_dead_letter)
                )

            def each(msg: Msg) -> None:
                # The subscription hands over every message it has in one go, then yields: they form a burst.
                if not burst:
                    loop.call_soon(handle_burst)
                burst.append(msg)

            return each

        await self._consume(consumer, dispatch, until)

    async def ensure(self, consumer: Consumer[M]) -> None:
        """Create the durable consumer as consuming it would (nothing changes when it exists already)."""
        await self._js.add_consumer(consumer.stream, self._config(consumer))

    def _config(self, consumer: Consumer[M]) -> ConsumerConfig:
        settings = self._settings
        return dataclasses.replace(
            shared_config(settings),
            durable_name=consumer.durable,
            name=consumer.durable,
            filter_subject=consumer.filter_subject,
            max_ack_pending=max(settings.max_ack_pending, consumer.window or settings.concurrency),
        )

    async def _consume(
        self,
        consumer: Consumer[M],
        dispatch: Callable[[asyncio.TaskGroup, StandingPull, _InFlight], _Dispatch],
        until: asyncio.Event | None = None,
    ) -> None:
        settings = self._settings
        window_size = consumer.window or settings.concurrency
        config = self._config(consumer)
        await self._js.add_consumer(consumer.stream, config)
        in_flight: _InFlight = {}
        window = PullWindow(
            capacity=window_size,
            refill=max(1, min(settings.fetch_batch, window_size) // 4),
            batch=settings.fetch_batch,
        )
        async with asyncio.TaskGroup() as outer:
            # Outside the handlers' group, so it keeps their messages alive until the last one settles.
            keeper = outer.create_task(self._keep_alive(in_flight))
            try:
                async with asyncio.TaskGroup() as group:
                    pull: StandingPull
                    handle: _Dispatch

                    def on_message(msg: Msg) -> None:
                        if pull.draining:
                            # Sent before the server heard that this process stops: another worker takes it.
                            group.create_task(self._hand_back(msg, pull))
                            return
                        handle(msg)

                    async def recreate() -> None:
                        log.warning("%s: consumer deleted; creating it again", consumer.durable)
                        await self._js.add_consumer(consumer.stream, config)

                    pull = StandingPull(
                        self._nc, consumer.stream, consumer.durable, window, on_message, on_deleted=recreate
                    )
                    handle = dispatch(group, pull, in_flight)
                    await pull.start()
                    try:
                        await pull.run(until or self._lifetime.stop_event)
                    except BaseException:
                        await pull.close()
                        raise
            finally:
                keeper.cancel()

    async def _hand_back(self, msg: Msg, pull: StandingPull) -> None:
        try:
            with contextlib.suppress(Exception):
                await msg.nak()
        finally:
            pull.settled()
            self._outcomes.counted(pull.durable, "handed_back").inc()

    async def _keep_alive(self, in_flight: _InFlight) -> None:
        # A handler's message stays unacknowledged until it settles; however long the handler takes (and
        # however busy the loop is), the server hears that it is in progress at least four times per ack
        # wait, so it is never redelivered to a second worker while the first is still on it. Only
        # messages held longer than a tick cost anything: a fast handler is never touched.
        tick = self._settings.ack_wait_s / 4
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            due = loop.time() - tick
            for msg, since in list(in_flight.values()):
                if since <= due:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _handle(
        self,
        consumer: Consumer[M],
        handler: Handler[M],
        msg: Msg,
        pull: StandingPull,
        in_flight: _InFlight,
        on_dead_letter: DeadLetterHook | None,
    ) -> None:
        started = time.perf_counter()
        in_flight[id(msg)] = (msg, asyncio.get_running_loop().time())
        outcome = "ack"
        try:
            delivery = delivery_of(msg)
            logs.bind(trace_id=tracing.trace_id(delivery.traceparent), subject=msg.subject)
            message = await self._outcomes.decoded(consumer, msg, delivery, on_dead_letter)
            if message is UNDECODABLE:
                outcome = "reject"
                return
            failure: Exception | None = None
            try:
                await handler(message, delivery)
            except Exception as exc:
                failure = exc
            outcome = await self._outcomes.settle(consumer, msg, delivery, failure, on_dead_letter)
        except asyncio.CancelledError:
            outcome = await self._outcomes.handed_back_at_cancel(msg)
            raise
        except Exception:
            # The connection went away while settling: the server redelivers after ack_wait.
            outcome = "unsettled"
            log.exception("%s: could not settle %s", consumer.durable, msg.subject)
        finally:
            del in_flight[id(msg)]
            pull.settled()
            self._outcomes.counted(consumer.durable, outcome).inc()
            self._outcomes.timed(consumer.durable).observe(time.perf_counter() - started)

    async def _handle_burst(
        self,
        consumer: Consumer[M],
        handler: BatchHandler[M],
        msgs: list[Msg],
        pull: StandingPull,
        in_flight: _InFlight,
        on_dead_letter: DeadLetterHook | None,
    ) -> None:
        started = time.perf_counter()
        now = asyncio.get_running_loop().time()
        for msg in msgs:
            in_flight[id(msg)] = (msg, now)
        outcomes: dict[int, str] = {}
        try:
            items: list[tuple[M, Delivery]] = []
            for msg in msgs:
                delivery = delivery_of(msg)
                message = await self._outcomes.decoded(consumer, msg, delivery, on_dead_letter)
                if message is UNDECODABLE:
                    outcomes[id(msg)] = "reject"
                else:
                    items.append((message, delivery))
            try:
                failures: list[Exception | None] = await handler(items)
            except Exception as exc:
                failures = [exc] * len(items)  # what it raised befalls each message, as a handler's would
            for (_, delivery), failure in zip(items, failures, strict=True):
                msg = delivery._msg
                try:
                    outcomes[id(msg)] = await self._outcomes.settle(
                        consumer, msg, delivery, failure, on_dead_letter
                    )
                except Exception:
                    outcomes[id(msg)] = "unsettled"
                    log.exception("%s: could not settle %s", consumer.durable, msg.subject)
        except asyncio.CancelledError:
            for msg in msgs:
                if id(msg) not in outcomes:
                    outcomes[id(msg)] = await self._outcomes.handed_back_at_cancel(msg)
            raise
        finally:
            took = time.perf_counter() - started
            timed = self._outcomes.timed(consumer.durable)
            counts: dict[str, int] = {}
            for msg in msgs:
                del in_flight[id(msg)]
                pull.settled()
                outcome = outcomes.get(id(msg), "unsettled")
                counts[outcome] = counts.get(outcome, 0) + 1
                timed.observe(took)
            for outcome, count in counts.items():
                self._outcomes.counted(consumer.durable, outcome).inc(count)
