"""POST /v1/hooks/github: GitHub's webhook. Verified by its signature (no bearer token), answered at once;
the review itself starts in the mesh (services/orchestrator/reviews/) from the message published here.

A delivery is taken once: its id is published as the message's dedup id, then remembered in the deliveries
bucket (longer than JetStream's two-minute window); a crash between the two leaves a redelivery to publish
again, which starts the same workflow (its id is one per repository, pull request and head commit).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import operations, topics
from maestro.bus import Bus
from maestro.github import config as github_config
from maestro.github import review, signature, webhook
from maestro.http import error, json_answer, limited_body, route
from proto.v1.reviews import HookAnswer

log = logging.getLogger(__name__)

_DELIVERY = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_EVENT = re.compile(r"^[a-z_]{1,64}$")


def hook_routes(bus: Bus) -> list[web.RouteDef]:
    """The webhook's route (it answers 404 to every delivery when no repository is connected)."""
    # A configuration that cannot be used stops the orchestrator here, at start-up (GithubConfigError).
    config = github_config.from_settings(bus.settings)
    limit = bus.settings.max_request_bytes
    deliveries: list[KeyValue] = []

    async def bucket() -> KeyValue:
        if not deliveries:
            deliveries.append(await bus.js.key_value(topics.BUCKET_DELIVERIES))
        return deliveries[0]

    async def seen(delivery: str) -> bool:
        try:
            await (await bucket()).get(delivery)
        except KeyNotFoundError:
            return False
        return True

    async def receive(request: web.Request) -> web.StreamResponse:
        body = await limited_body(request, limit)
        if isinstance(body, web.Response):
            return body
        event = request.headers.get(webhook.EVENT_HEADER, "")
        delivery = request.headers.get(webhook.DELIVERY_HEADER, "")
        if not _EVENT.match(event):
            return error(400, f"{webhook.EVENT_HEADER} is not an event name", field=webhook.EVENT_HEADER)
        if not _DELIVERY.match(delivery):
            return error(
                400, f"{webhook.DELIVERY_HEADER} is not a delivery id", field=webhook.DELIVERY_HEADER
            )
        signed = request.headers.get(webhook.SIGNATURE_HEADER, "")
        if not signed:
            # A malformed request (the header is required), not yet a failed authentication: GitHub signs
            # every delivery of a webhook that has a secret, and Maestro's have one.
            missing = f"no {webhook.SIGNATURE_HEADER}: give the webhook its tenant's secret in GitHub"
            return error(400, missing, field=webhook.SIGNATURE_HEADER)
        try:
            hook = webhook.payload(body)
        except msgspec.DecodeError as exc:  # ValidationError is one
            return error(400, f"not a GitHub webhook payload: {exc}", field="$")
        repo = hook.repository.full_name
        connected = config.repository(repo) if config is not None else None
        if config is None or connected is None:
            return error(404, f"repository {repo} is not connected to Maestro (MAESTRO_GITHUB_CONFIG)")
        secret = config.secrets[connected.tenant]
        if not signature.verify(secret, body, signed):
            log.warning("webhook %s for %s: wrong signature", delivery, repo)
            why = f"{webhook.SIGNATURE_HEADER} is not this body's signature under {repo}'s webhook secret"
            return error(401, why)
        if event == "ping":
            return json_answer(HookAnswer(outcome="pong", delivery=delivery, detail=f"{repo} is connected"))
        try:
            delivered_before = await seen(delivery)
        except (NatsError, TimeoutError) as exc:
            log.warning("webhook %s for %s: deliveries not readable: %r", delivery, repo, exc)
            return error(503, "could not tell whether this delivery came before; GitHub may redeliver it")
        if delivered_before:
            return json_answer(HookAnswer(outcome="seen", delivery=delivery, detail="delivered before"))
        try:
            decided = webhook.pushed(event, hook, connected.tenant, delivery)
        except msgspec.ValidationError as exc:
            return error(400, f"not a pull request GitHub would send: {exc}", field="$.pull_request")
        if isinstance(decided, webhook.Ignored):
            return json_answer(HookAnswer(outcome="ignored", delivery=delivery, detail=decided.reason), 202)
        try:
            await bus.streams.publish(
                topics.HOOKS.at(connected.tenant), decided, msg_id=topics.hook_msg_id(delivery)
            )
            stamp = datetime.now(UTC).isoformat().encode()
            await (await bucket()).put(delivery, stamp)
        except (NatsError, TimeoutError) as exc:
            log.warning("webhook %s for %s not queued: %r", delivery, repo, exc)
            return error(503, "could not queue the delivery; GitHub may redeliver it")
        workflow_id = review.workflow_id(decided.repo, decided.number, decided.head_sha)
        log.info("webhook %s: review %s of %s#%d", delivery, workflow_id, repo, decided.number)
        return json_answer(
            HookAnswer(
                outcome="accepted",
                delivery=delivery,
                workflow_id=workflow_id,
                detail=f"reviewing {decided.head_sha[:12]} of pull request #{decided.number}",
            ),
            202,
        )

    return [route(operations.GITHUB_HOOK, receive)]
