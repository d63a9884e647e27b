"""The notifier: delivers notifications (a human task that breached an SLA) to people's tools, off the path
of the task events, so a slow or broken endpoint delays nothing but its own notifications.

The lifecycle stores each notification once in MAESTRO_NOTIFY (message id: the task and the SLA); the
durable `orchestrator-notifier` hands each to a Notifier, and the outcome table settles it: delivered, it is
acked (and deleted); refused for good (a 4xx but 408 and 429), it goes to the DLQ with the answer; else it
is tried again with a growing back-off. A webhook is a POST of the notification as JSON, signed like GitHub's:
`X-Maestro-Signature-256: sha256=<HMAC-SHA256 of the body under the shared secret, hex>`, with the
delivery's id in `X-Maestro-Delivery` (the same on every try: a receiver drops what it has seen).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Protocol

import aiohttp

from maestro import codec, topics
from maestro.bus import Bus
from maestro.deliveries import Consumer, Delivery
from maestro.errors import CannotRun, Reject, Retry
from maestro.settings import Settings
from proto.v1.humans import Notification

log = logging.getLogger(__name__)

CONSUMER = Consumer(
    stream=topics.STREAM_NOTIFY,
    durable=topics.DURABLE_NOTIFIER,
    filter_subject=topics.NOTIFICATIONS.all,
    type=Notification,
    origin="notifier",
)
SIGNATURE_HEADER = "X-Maestro-Signature-256"
DELIVERY_HEADER = "X-Maestro-Delivery"
EVENT_HEADER = "X-Maestro-Event"
TIMEOUT_S = 10.0
"""How long an endpoint may take to answer before the try counts as failed."""
MAX_BACKOFF_S = 300.0


class Notifier(Protocol):
    """Where notifications go: raise Retry to be tried again later, Reject when it never will take it."""

    async def send(self, notification: Notification, delivery_id: str) -> None: ...


class LogNotifier:
    """Logs each notification (no endpoint configured): the task's events hold the escalation anyway."""

    async def send(self, notification: Notification, delivery_id: str) -> None:
        log.warning(
            "%s SLA of %s breached (%s): %s",
            notification.sla,
            notification.task_id,
            notification.action,
            notification.reason,
            extra={"task_id": notification.task_id, "tenant": notification.tenant},
        )


def signature(secret: bytes, body: bytes) -> str:
    """The value of X-Maestro-Signature-256 for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs each notification, signed, to one URL."""

    def __init__(self, url: str, secret: bytes, session: aiohttp.ClientSession) -> None:
        self._url = url
        self._secret = secret
        self._session = session

    async def send(self, notification: Notification, delivery_id: str) -> None:
        body = codec.encode(notification)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: notification.kind,
            DELIVERY_HEADER: delivery_id,
            SIGNATURE_HEADER: signature(self._secret, body),
        }
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)
            ) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Retry(reason=f"webhook not reached: {exc!r}") from None
        if 200 <= status < 300:
            return
        if 400 <= status < 500 and status not in (408, 429):
            raise Reject(f"the webhook refused the notification: HTTP {status}")
        raise Retry(reason=f"the webhook answered HTTP {status}")


def secret_of(settings: Settings) -> bytes:
    """The webhook secret; raises CannotRun when a webhook URL is set without a readable, non-empty one."""
    if not settings.notify_secret_file:
        raise CannotRun(
            "MAESTRO_NOTIFY_WEBHOOK_URL is set but MAESTRO_NOTIFY_SECRET_FILE is not: webhooks are signed"
        )
    try:
        secret = Path(settings.notify_secret_file).read_bytes().strip()
    except OSError as exc:
        named = settings.notify_secret_file
        raise CannotRun(f"MAESTRO_NOTIFY_SECRET_FILE: cannot read {named}: {exc.strerror}") from None
    if not secret:
        raise CannotRun(f"MAESTRO_NOTIFY_SECRET_FILE: {settings.notify_secret_file} is empty")
    return secret


async def serve(bus: Bus) -> None:
    """Deliver notifications until the bus stops, to the webhook the settings name (else to the log)."""
    settings = bus.settings
    async with aiohttp.ClientSession() as session:
        notifier: Notifier = LogNotifier()
        if settings.notify_webhook_url:
            notifier = WebhookNotifier(settings.notify_webhook_url, secret_of(settings), session)

        async def deliver(notification: Notification, delivery: Delivery) -> None:
            delivery_id = delivery.headers.get(topics.HEADER_MSG_ID) or str(delivery.stream_seq)
            try:
                await notifier.send(notification, delivery_id)
            except Retry as exc:
                delay = min(0.5 * 2.0 ** min(delivery.attempt - 1, 10), MAX_BACKOFF_S)
                log.warning("notification %s not delivered (try %d): %s", delivery_id, delivery.attempt, exc)
                raise Retry(delay, exc.reason) from None

        await bus.consumers.consume(CONSUMER, deliver)
