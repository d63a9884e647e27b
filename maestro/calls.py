"""Partitioned request/reply: call an endpoint, and answer one (all of it, or the partitions a replica owns).

An endpoint's handler never answers itself: it returns or raises, and `_answer` turns that into the reply
or its error code, by the request/reply column of the outcome table in maestro/outcomes.py (and NotFound:
404).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import ServiceConfig

from maestro import codec, topics
from maestro.errors import Backpressure, NotFound, Reject, RemoteError, Retry
from maestro.lifetime import Lifetime
from maestro.metrics import Metrics
from maestro.replies import Replies

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Resp = TypeVar("Resp")

# How often a replica re-reads which partitions it owns: how long a partition may go unserved (its
# requests then fall back to the public subject) or doubly served (slower, never wrong) after a change.
_PARTITION_CHECK_S = 1.0


class Calls:
    """Requests to endpoints, and the endpoints this process answers (until its lifetime stops)."""

    def __init__(self, nc: Client, replies: Replies, metrics: Metrics, lifetime: Lifetime) -> None:
        self._nc = nc
        self._replies = replies
        self._metrics = metrics
        self._lifetime = lifetime
        self._service_ids: dict[str, str] = {}

    async def request(
        self, endpoint: topics.Endpoint[Req, Resp], message: Req, *, key: str | None = None
    ) -> Resp:
        """Call an endpoint; raises RemoteError with the peer's code (503 when nobody answers in time).

        With a `key` (a tenant) and a partitioned endpoint, the request goes to the replica that owns the
        key's partition, or to any replica when nobody owns it right now.
        """
        data = codec.encode(message)
        reply: Msg | None = None
        try:
            # The owner of the key's partition may have died with its subscription still in place: that
            # request times out, and is a 503 to retry like any other late answer, never a bare TimeoutError.
            if key is not None and endpoint.partitions:
                with contextlib.suppress(nats.errors.NoRespondersError):
                    reply = await self._replies.request(endpoint.partition_subject(key), data)
            if reply is None:
                reply = await self._replies.request(endpoint.subject, data)
        except nats.errors.NoRespondersError:
            raise RemoteError(503, f"no {endpoint.subject} service is running") from None
        except TimeoutError:
            raise RemoteError(503, f"{endpoint.subject} did not answer in time") from None
        if reply.headers and topics.HEADER_ERROR_CODE in reply.headers:
            code = int(reply.headers.get(topics.HEADER_ERROR_CODE) or 500)
            raise RemoteError(code, reply.headers.get(topics.HEADER_ERROR, ""))
        return codec.decode(endpoint.response, reply.data)

    def service_id(self, service: str) -> str | None:
        """The micro service id this process serves `service` under (what its ping answers), once serving."""
        return self._service_ids.get(service)

    async def serve(
        self,
        service: str,
        version: str,
        endpoints: list[tuple[topics.Endpoint[Any, Any], Callable[[Any], Awaitable[Any]]]],
    ) -> None:
        """Answer requests on each endpoint (queue group = service name) until stop() or cancellation."""
        async with asyncio.TaskGroup() as group:
            svc = await add_service(
                self._nc, ServiceConfig(name=service, version=version, queue_group=service)
            )
            self._service_ids[service] = svc.id
            try:
                for endpoint, handler in endpoints:
                    await svc.add_endpoint(
                        name=endpoint.name,
                        subject=endpoint.subject,
                        handler=self._answerer(group, endpoint, handler),
                    )
                await self._lifetime.stopped()
            finally:
                await svc.stop()

    async def serve_partitions(
        self,
        service: str,
        endpoints: list[tuple[topics.Endpoint[Any, Any], Callable[[Any], Awaitable[Any]]]],
        owned: Callable[[], Awaitable[set[int]]],
    ) -> None:
        """Answer the subjects of the partitions `owned()` names (asked again every second) until stop().

        Answers exactly as serve() does; the queue group `<service>-p` lets two replicas share a partition
        for the moment ownership changes hands.
        """
        subs: dict[int, list[Subscription]] = {}
        async with asyncio.TaskGroup() as group:
            try:
                while not self._lifetime.stopping:
                    try:
                        wanted = await owned()
                    except Exception as exc:
                        log.warning("%s: could not tell which partitions are mine: %r", service, exc)
                        wanted = set(subs)
                    for partition in sorted(set(subs) - wanted):
                        for sub in subs.pop(partition):
                            await sub.unsubscribe()
                    for partition in sorted(wanted - set(subs)):
                        subs[partition] = [
                            await self._nc.subscribe(
                                endpoint.subject_of_partition(partition),
                                queue=f"{service}-p",
                                cb=self._partition_answerer(group, endpoint, handler),
                            )
                            for endpoint, handler in endpoints
                            if partition < endpoint.partitions
                        ]
                    await self._lifetime.sleep(_PARTITION_CHECK_S)
            finally:
                for partition_subs in subs.values():
                    for sub in partition_subs:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()

    def _partition_answerer(
        self,
        group: asyncio.TaskGroup,
        endpoint: topics.Endpoint[Req, Resp],
        handler: Callable[[Req], Awaitable[Resp]],
    ) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            group.create_task(self._answer(endpoint, handler, Request(msg)))

        return on_message

    def _answerer(
        self,
        group: asyncio.TaskGroup,
        endpoint: topics.Endpoint[Req, Resp],
        handler: Callable[[Req], Awaitable[Resp]],
    ) -> Callable[[Request], Awaitable[None]]:
        # Each request runs in its own task, so one slow answer does not hold up the subscription.
        async def on_request(request: Request) -> None:
            group.create_task(self._answer(endpoint, handler, request))

        return on_request

    async def _answer(
        self,
        endpoint: topics.Endpoint[Req, Resp],
        handler: Callable[[Req], Awaitable[Resp]],
        request: Request,
    ) -> None:
        code = "200"
        try:
            try:
                message = codec.decode(endpoint.request, request.data)
                answer = await handler(message)
            except codec.DecodeError as exc:
                code = "400"
                await request.respond_error(code, f"invalid request: {exc}")
            except Reject as exc:
                code = "400"
                await request.respond_error(code, exc.reason)
            except NotFound as exc:
                code = "404"
                await request.respond_error(code, str(exc))
            except Backpressure as exc:
                code = "429"
                await request.respond_error(code, str(exc))
            except Retry as exc:
                code = "503"
                await request.respond_error(code, str(exc))
            except Exception as exc:
                code = "500"
                log.exception("%s failed", endpoint.subject)
                await request.respond_error(code, f"internal error: {exc!r}")
            else:
                await request.respond(codec.encode(answer))
        except Exception:
            log.exception("%s: could not answer", endpoint.subject)
        finally:
            self._metrics.requests.labels(endpoint.name, code).inc()
