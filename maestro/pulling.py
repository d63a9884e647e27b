"""One standing pull per durable consumer: ask the server for as many messages as there are free handler
slots, and ask again as handlers finish, instead of one fetch round trip (and one time-out) per batch.

The server pushes messages into an inbox as they are stored, so a message waits for no poll, and an idle
consumer costs one pull request per `expires` and a heartbeat per `heartbeat` (JetStream ADR-13). What the
server owes this process is counted (`PullWindow`, no I/O): a request adds its batch, each message takes
one off, an expired request's status gives back what it did not fill. A pull lost without a word (the
server restarted, the connection came back) shows as heartbeats that stop coming or a new connection: the
count is then reset and the window asked for again.

Stopping drains the inbox: the server is told first that nothing more is wanted, a round trip makes sure
everything it sent before is in, and `on_message` sees those last messages while `draining` is true (the
bus hands them back at once, so another worker takes them without waiting out the ack wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from maestro import topics
from maestro.cancels import raise_swallowed_cancel

log = logging.getLogger(__name__)

_NANOS = 1_000_000_000
_IDLE_HEARTBEAT = "100"
_REQUEST_EXPIRED = "408"
_NO_MESSAGES = "404"
_CONFLICT = "409"
_CONSUMER_DELETED = "Consumer Deleted"


def delivered_and_sequence(reply: str) -> tuple[int, int]:
    """How often a consumer's message was delivered and its stream sequence, read off its ack subject.

    `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`, or with the
    domain and account hash before the stream (and a token after) in the newer form (JetStream ADR-15);
    what nats-py's Msg.metadata reads too, without building its objects and a datetime per message.
    Raises ValueError for a subject that is neither.
    """
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[4]), int(tokens[5])
    if len(tokens) >= 11:
        return int(tokens[6]), int(tokens[7])
    raise ValueError(f"not a JetStream ack subject: {reply!r}")


class _PullRequest(msgspec.Struct, omit_defaults=True):
    """The body of a JetStream pull request (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`)."""

    batch: int
    expires: int = 0
    idle_heartbeat: int = 0


_encode_request = msgspec.json.Encoder().encode


@dataclass
class PullWindow:
    """How many messages this process holds, and how many the server still owes it; what to ask for next.

    `capacity` bounds held + owed, so no more messages arrive than there are handler slots; a request is
    sent only once `refill` slots are free, so a busy consumer asks once per `refill` messages, not once per
    message, and at most `batch` per request. One request at a time: the next is sent once the server owes
    nothing more (the last one was filled or expired). Refills sent while one was still open piled up after
    a burst (75 requests on the orchestrator's events consumer), each costing a heartbeat every few seconds
    and a renewal when it expired: 15 messages a second on an idle mesh. The server serves open requests in
    turn anyway, so one does as well.
    """

    capacity: int
    refill: int
    batch: int
    held: int = 0
    owed: int = 0

    @property
    def free(self) -> int:
        """Slots neither held nor owed."""
        return self.capacity - self.held - self.owed

    def due(self) -> bool:
        """Whether a request should be sent: none is open and enough slots are free."""
        free = self.free
        return self.owed == 0 and free >= self.refill and free > 0

    def wanted(self) -> int:
        """The size of the next request (and count it as owed), or 0 when none should be sent now."""
        if not self.due():
            return 0
        size = min(self.free, self.batch)
        self.owed += size
        return size

    def delivered(self) -> None:
        """A message arrived: one more held, one less owed."""
        self.held += 1
        self.owed = max(0, self.owed - 1)

    def settled(self) -> None:
        """A handler finished its message."""
        self.held = max(0, self.held - 1)

    def expired(self, unfilled: int) -> None:
        """A request ended with `unfilled` of its batch not sent."""
        self.owed = max(0, self.owed - unfilled)

    def lost(self) -> None:
        """The server may have forgotten every request: owe nothing, ask again."""
        self.owed = 0


@dataclass(frozen=True)
class PullSettings:
    """How a standing pull asks: request lifetime, heartbeat, and how often it checks that it is alive."""

    expires_s: float = 30.0
    heartbeat_s: float = 5.0
    tick_s: float = 1.0
    """How often the pull checks for a new connection or silent heartbeats (and how late it can notice)."""
    silence: float = 2.5
    """Heartbeats missed in a row after which the pull counts as lost."""


class StandingPull:
    """The standing pull of one durable consumer on one connection; `on_message` gets every message.

    `on_message` runs on the subscription's task, in delivery order; it must not block (start a task for
    the work). Call `settled()` once per message when its handler is done.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        durable: str,
        window: PullWindow,
        on_message: Callable[[Msg], None],
        *,
        settings: PullSettings = PullSettings(),
        on_deleted: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._nc = nc
        self._next = topics.consumer_next_subject(stream, durable)
        self.durable = durable
        self._asking: set[asyncio.Task[None]] = set()
        self.window = window
        self._on_message = on_message
        self._settings = settings
        self._on_deleted = on_deleted
        self._sub: Subscription | None = None
        self._inbox = nc.new_inbox()
        self._heard = 0.0
        self._reconnects = 0
        self._deleted = False
        self.draining = False

    async def start(self) -> None:
        """Subscribe the inbox and ask for the first window."""
        self._sub = await self._nc.subscribe(self._inbox, cb=self._received, pending_msgs_limit=-1)
        self._reconnects = self._nc.stats["reconnects"]
        self._heard = asyncio.get_running_loop().time()
        await self._ask()

    def settled(self) -> None:
        """A handler finished its message: ask for more when enough slots are free (never while draining)."""
        self.window.settled()
        if self.draining or any(not asking.done() for asking in self._asking):
            return  # the request on its way asks for every slot free by the time it goes
        if self.window.due():
            task = asyncio.get_running_loop().create_task(self._ask())
            self._asking.add(task)
            task.add_done_callback(self._asking.discard)

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep the pull alive until `stopping` is set: re-ask after a reconnect, silent heartbeats or a
        deleted consumer; then drain."""
        loop = asyncio.get_running_loop()
        settings = self._settings
        while not stopping.is_set():
            raise_swallowed_cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), settings.tick_s)
            if stopping.is_set():
                break
            reconnects = self._nc.stats["reconnects"]
            silent = loop.time() - self._heard > settings.silence * settings.heartbeat_s
            if self._deleted and self._on_deleted is not None:
                self._deleted = False
                await self._on_deleted()
                self.window.lost()
            elif reconnects != self._reconnects or silent:
                if silent:
                    log.info(
                        "%s: pull silent for %.0fs; asking again", self.durable, loop.time() - self._heard
                    )
                self._reconnects = reconnects
                self._heard = loop.time()
                self.window.lost()
            await self._ask()
        await self.drain()

    async def drain(self) -> None:
        """Tell the server to send nothing more; what it sent before reaches `on_message` with `draining`."""
        self.draining = True
        sub, self._sub = self._sub, None
        if sub is None:
            return
        try:
            await sub.drain()  # type: ignore[no-untyped-call]
        except Exception as exc:  # the connection is gone: the server forgets the pull with it
            log.debug("%s: drain: %r", self.durable, exc)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        """Drop the inbox at once (cancellation): messages still on the way wait out their ack wait."""
        self.draining = True
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _ask(self) -> None:
        while not self.draining and self._sub is not None:
            size = self.window.wanted()
            if not size:
                return
            body = _PullRequest(
                batch=size,
                expires=int(self._settings.expires_s * _NANOS),
                idle_heartbeat=int(self._settings.heartbeat_s * _NANOS),
            )
            try:
                await self._nc.publish(self._next, _encode_request(body), reply=self._inbox)
            except Exception as exc:  # not connected: the tick asks again once it is
                log.debug("%s: pull request not sent: %r", self.durable, exc)
                self.window.expired(size)
                return

    async def _received(self, msg: Msg) -> None:
        self._heard = asyncio.get_running_loop().time()
        headers = msg.headers
        status = headers.get(topics.HEADER_STATUS) if headers and not msg.data else None
        if status is None:
            self.window.delivered()
            self._on_message(msg)
            if self.window.due():  # the request is filled, and handlers finished meanwhile
                await self._ask()
            return
        if status == _IDLE_HEARTBEAT or status == _NO_MESSAGES:
            return
        assert headers is not None
        unfilled = headers.get(topics.HEADER_PENDING_MESSAGES)
        if unfilled is not None:
            self.window.expired(int(unfilled))
        elif status == _CONFLICT or status == _REQUEST_EXPIRED:
            self.window.lost()
        if status == _CONFLICT:
            description = headers.get(topics.HEADER_STATUS_DESCRIPTION, "")
            log.info("%s: pull ended: %s %s", self.durable, status, description)
            if description == _CONSUMER_DELETED:
                self._deleted = True
        if not self.draining:
            await self._ask()
