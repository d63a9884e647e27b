"""The guard service: judge each request, reserve its estimated cost, and queue it for its role.

Every step is idempotent, so a redelivered request changes nothing the second time: events carry a
per-task dedup id, the budget answers a repeated reserve with the same reservation, and the assignment's
dedup id is the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import structs
from prometheus_client import CollectorRegistry, Counter, Histogram, Info

from maestro import claims, codec, history, topics, tracing
from maestro.bus import Bus
from maestro.deliveries import Consumer, Delivery
from maestro.errors import Reject, RemoteError, Retry
from maestro.estimates import Prices
from maestro.policy.bundle import Bundle, BundleError, load_default
from maestro.policy.bundle_store import Policies, following
from maestro.policy.engine import Judgement, evaluate, warm
from maestro.policy.policies.credentials import mask_text
from maestro.runtime import Service
from maestro.tenant_labels import TenantLabels
from proto.v1 import (
    Accepted,
    Decision,
    Queued,
    Rejected,
    Release,
    Reservation,
    TaskId,
    TaskRequest,
    Violation,
    reservation_id_for,
)
from proto.v1.humans import HumanWork
from proto.v1.ids import is_human
from services.guard import admission, approvals
from services.guard.tally import Tally, publishing

log = logging.getLogger(__name__)

ORIGIN = "guard"
CONSUMER = Consumer(
    stream=topics.STREAM_REQUESTS,
    durable=topics.DURABLE_GUARD,
    filter_subject=topics.REQUESTS.all,
    type=TaskRequest,
    origin=ORIGIN,
    # A request that cannot be judged is kept for 30 days: never with a credential in it.
    scrub=mask_text,
    # Anyone may publish here: a misspelt field is refused, never dropped in silence.
    strict=True,
)
_EVAL_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25)


@dataclass(frozen=True)
class GuardMetrics:
    """What the guard decided, by verdict, deciding rule and tenant, how long judging took, and the bundle."""

    decisions: Counter
    eval_seconds: Histogram
    bundle: Info
    bundle_updates: Counter
    tenant_label: TenantLabels

    @classmethod
    def create(cls, registry: CollectorRegistry, tenant_label: TenantLabels) -> GuardMetrics:
        """Register the guard's metrics on `registry`, naming tenants by `tenant_label`."""
        return cls(
            tenant_label=tenant_label,
            decisions=Counter(
                "maestro_guard_decisions_total",
                "Requests decided, by verdict, the policy and rule that decided it ('none' when allowed) and "
                "tenant (bounded: MAESTRO_METRICS_TENANTS)",
                ["verdict", "policy", "rule", "tenant"],
                registry=registry,
            ),
            eval_seconds=Histogram(
                "maestro_guard_eval_seconds",
                "Time the policy engine took to judge one request",
                buckets=_EVAL_BUCKETS,
                registry=registry,
            ),
            bundle=Info(
                "maestro_guard_policy_bundle",
                "The policy bundle in force: its version and sha256",
                registry=registry,
            ),
            bundle_updates=Counter(
                "maestro_guard_policy_bundle_updates_total",
                "Policy bundles offered by the KV bucket, by outcome (loaded, refused)",
                ["outcome"],
                registry=registry,
            ),
        )

    def __post_init__(self) -> None:
        # Both outcomes are exported from the start, at 0, so that the first refusal is an increase.
        for outcome in ("loaded", "refused"):
            self.bundle_updates.labels(outcome)

    def loaded(self, bundle: Bundle) -> None:
        """A bundle came into force."""
        self.bundle.info({"version": bundle.version, "hash": bundle.hash})
        self.bundle_updates.labels("loaded").inc()

    def refused(self, _: BundleError) -> None:
        """A broken bundle was refused; the one in force stays."""
        self.bundle_updates.labels("refused").inc()


class _Envelope(msgspec.Struct):
    """Just enough of a request that did not decode to tell its sender."""

    id: TaskId | None = None
    tenant: Any = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def _envelope_of(data: bytes) -> _Envelope | None:
    """The id and tenant of a request that failed, when they can be read: decoded, or for a body nested
    past the decoder's depth, read off its top level."""
    try:
        return _envelope_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    except RecursionError:
        top = codec.top_level_strings(data, frozenset({"id", "tenant"}))
        try:
            return msgspec.convert(top, _Envelope)
        except msgspec.ValidationError:
            return None


def _input_rule(undecodable: bool) -> str:
    return "input.undecodable" if undecodable else "input.wrong-tenant"


@dataclass(frozen=True)
class Guard:
    """The guard's handlers, with the bus they publish on and the policy bundle they judge by."""

    bus: Bus
    policies: Policies
    prices: Prices
    metrics: GuardMetrics
    tally: Tally

    async def handle(self, request: TaskRequest, delivery: Delivery) -> None:
        """Judge one request and publish the outcome, once per task id whatever is delivered again.

        Raises Reject when the subject names another tenant than the request or the id belongs to another
        request (docs/ARCHITECTURE.md, Invariants), Retry when the budget cannot answer now.
        """
        (subject_tenant,) = topics.REQUESTS.values(delivery.subject)
        if subject_tenant != request.tenant:
            # Refused for the sender (the subject's tenant); the tenant the body names is never touched.
            raise Reject(f"a request of tenant {request.tenant!r} was published on {delivery.subject}")
        started = time.perf_counter()
        judgement = evaluate(request, delivery.size, self.policies.current, self.prices)
        self.metrics.eval_seconds.observe(time.perf_counter() - started)
        try:
            seen, last = await self._claimed(request, delivery)
        except claims.IdConflict as exc:
            raise Reject(str(exc), notify=False) from None
        if seen is claims.Seen.AGAIN and await self._handled_before(judgement, delivery, last):
            return
        # Stored on its own already (the budget kept it waiting before): the verdict does not carry it again.
        accepted_before = last is not None and isinstance(last.event, Accepted)
        decision = judgement.decision
        # From here on only the forwarded request is used: with verdict redact, it is the masked one.
        request = judgement.request

        publish = functools.partial(self.bus.streams.publish, traceparent=delivery.traceparent)
        now = datetime.now(UTC)
        subject = topics.EVENTS.at(request.tenant, request.id)
        # A label that holds a credential must not reach the audit log; the verdict says which one.
        leaked_label = any(v.location.startswith("labels") for v in decision.violations)
        accepted = Accepted(
            task_id=request.id,
            tenant=request.tenant,
            at=now,
            role=request.role,
            parent=request.parent,
            labels={} if leaked_label else request.labels,
            model=request.model,
            trace_id=tracing.trace_id(delivery.traceparent),
            prompt_chars=len(request.prompt),
            context_files=len(request.context),
            commands=len(request.commands),
            timeouts=request.timeouts,
            retry=request.retry,
            human=request.human or (HumanWork() if is_human(request.role) else None),
        )
        accept = functools.partial(
            publish, subject, accepted, msg_id=topics.event_msg_id(request.id, "accepted")
        )
        verdict_id = topics.event_msg_id(request.id, "verdict")

        match decision.verdict:
            case "deny":
                self._count(judgement)
                reason = admission.reason(decision)
                await accept()
                await publish(
                    subject,
                    Rejected(
                        task_id=request.id, tenant=request.tenant, at=now, decision=decision, reason=reason
                    ),
                    msg_id=verdict_id,
                )
                log.info("rejected: %s", reason, extra={"task_id": request.id, "tenant": request.tenant})
                return
            case "approve":
                self._count(judgement)
                await accept()
                await self.on_approve(request, decision, delivery)
                return
            case "allow" | "redact":
                pass

        expected = judgement.estimate
        try:
            held = await admission.reserve(self.bus, request, expected.micro_usd, expected.tokens)
        except Retry:
            await accept()  # while the budget keeps it waiting, the task reads as pending
            raise
        now = datetime.now(UTC)
        if isinstance(held, Reservation) and not held.granted:
            await accept()
            refused = admission.over_budget(
                request, structs.replace(decision, estimate_micro_usd=expected.micro_usd), held
            )
            self._count_decision(refused, refused.violations[-1], request.tenant)
            await publish(
                subject,
                Rejected(
                    task_id=request.id,
                    tenant=request.tenant,
                    at=now,
                    decision=refused,
                    reason=admission.reason(refused),
                ),
                msg_id=verdict_id,
            )
            log.info("rejected: over budget", extra={"task_id": request.id, "tenant": request.tenant})
            return

        self._count(judgement)
        # Allowed and held: accepted and queued in one stored event (Queued.accepted), one write less.
        await admission.queue(
            self.bus,
            request,
            decision,
            held,
            at=now,
            slot="verdict",
            traceparent=delivery.traceparent,
            accepted=None if accepted_before else accepted,
        )

    async def _claimed(
        self, request: TaskRequest, delivery: Delivery
    ) -> tuple[claims.Seen, history.Stored | None]:
        """Claim the request's id (claims.claim_request) and, when it was claimed before, read the task's last
        stored event; a request its sender says it claimed (the SDK, the API, workflows) has both read at
        once, since its claim is there in the common case. Raises IdConflict."""
        events = topics.EVENTS.subject(request.tenant, request.id)
        if topics.HEADER_CLAIMED in delivery.headers:
            seen, last = await asyncio.gather(
                claims.claim_request(self.bus, request, claimed_by_sender=True),
                history.last_stored(self.bus.js, events),
            )
            return seen, last if seen is claims.Seen.AGAIN else None
        seen = await claims.claim_request(self.bus, request)
        if seen is claims.Seen.NEW:
            return seen, None
        return seen, await history.last_stored(self.bus.js, events)

    async def _handled_before(
        self, judgement: Judgement, delivery: Delivery, last: history.Stored | None
    ) -> bool:
        """Whether the guard already decided this request (it is seen again: resent, redelivered after a
        crash, or past every duplicate window), by `last`, the task's last stored event; a task left queued
        is handed to its role again (with fair dispatch, with its hold for the dispatcher to make: it may
        never have been made)."""
        request = judgement.request
        if last is None or isinstance(last.event, Accepted):
            return False  # nothing decided yet: judge it (again), every step is idempotent
        event = last.event
        context = {"task_id": request.id, "tenant": request.tenant}
        if isinstance(event, Queued):
            # The guard may have died between recording Queued and handing the task over.
            await admission.assign(
                self.bus,
                request,
                event.decision,
                event.reservation_id,
                queued_seq=last.seq,
                traceparent=delivery.traceparent,
                deferred=admission.hold_of(
                    self.bus, request, judgement.estimate.micro_usd, judgement.estimate.tokens
                )
                if self.bus.settings.fair_dispatch
                else None,
            )
        log.info("request seen again; its task is past %s", event.__struct_config__.tag, extra=context)
        return True

    async def on_approve(self, request: TaskRequest, decision: Decision, delivery: Delivery) -> None:
        """Park a request a human must approve: record that it awaits approval, and why."""
        timeout_s = self.policies.current.policy(request.tenant).approval_timeout_s
        await approvals.park(
            self.bus, request, decision, timeout_s=timeout_s, traceparent=delivery.traceparent
        )

    async def on_dead_letter(self, data: bytes, reason: str, subject: str) -> None:
        """Fail the task of a request that went to the DLQ, when its id can be read: for the tenant its
        subject names (the sender, whatever the body says). A request that never became a task (it did not
        decode, or its body names another tenant) first claims the id for that rejection, so its record can
        say why; an id that another tenant or request owns is left alone."""
        envelope = _envelope_of(data)
        if envelope is None or envelope.id is None:
            return
        (tenant,) = topics.REQUESTS.values(subject)
        undecodable = reason.startswith("undecodable")
        invalid = undecodable or envelope.tenant != tenant
        if invalid:
            try:
                await claims.claim(self.bus, envelope.id, tenant, claims.digest_of_bytes(data))
            except claims.IdConflict:
                return
        # The reason may quote a field's value, which is the sender's input and may hold a secret.
        safe_reason = mask_text(reason)
        decision = Decision(
            verdict="deny",
            violations=[
                Violation(
                    policy="input" if invalid else "guard",
                    rule_id=_input_rule(undecodable) if invalid else "guard.dead-letter",
                    severity="medium",
                    location="request",
                    message=safe_reason,
                    fix=f"send a request that matches the TaskRequest schema, on maestro.v1.req.{tenant}"
                    if invalid
                    else "see the dead letter in the DLQ; resubmit under a new id once the cause is fixed",
                )
            ],
            policy_version=self.policies.current.version,
            policy_hash=self.policies.current.hash,
        )
        self._count_decision(decision, decision.violations[0], tenant)
        # The request may have been reserved for before it failed for good: give the hold back now
        # rather than when its ttl runs out (releasing a task that has no reservation changes nothing).
        with contextlib.suppress(RemoteError):
            await self.bus.calls.request(
                topics.BUDGET_RELEASE,
                Release(tenant=tenant, reservation_id=reservation_id_for(envelope.id)),
                key=tenant,
            )
        events = topics.EVENTS.at(tenant, envelope.id)
        reason = f"{'invalid request' if invalid else 'not handled'}: {safe_reason}"
        now = datetime.now(UTC)
        ack = await self.bus.streams.publish(
            events,
            Rejected(task_id=envelope.id, tenant=tenant, at=now, decision=decision, reason=reason),
            msg_id=topics.event_msg_id(envelope.id, "verdict"),
        )
        if ack.duplicate:
            # A verdict (Queued) was recorded before the request failed for good: the guard withdraws it, as
            # a rejection of its own (a worker that gets the assignment after this finds the task ended).
            withdrawn = f"queued, then withdrawn: {reason}"
            await self.bus.streams.publish(
                events,
                Rejected(task_id=envelope.id, tenant=tenant, at=now, decision=decision, reason=withdrawn),
                msg_id=topics.event_msg_id(envelope.id, "withdrawn"),
            )
        log.info("failed an unhandled request", extra={"task_id": envelope.id, "tenant": tenant})

    def _count(self, judgement: Judgement) -> None:
        self._count_decision(judgement.decision, judgement.deciding, judgement.request.tenant)

    def _count_decision(self, decision: Decision, deciding: Violation | None, tenant: str) -> None:
        policy, rule = (deciding.policy, deciding.rule_id) if deciding else ("none", "none")
        self.metrics.decisions.labels(decision.verdict, policy, rule, self.metrics.tenant_label(tenant)).inc()
        self.tally.count(tenant, decision)


async def serve(bus: Bus) -> None:
    """Judge requests from the durable `guard` consumer, by the bundle in the KV bucket, until stop(); publish
    what it decided per tenant every MAESTRO_TALLY_S, and what is left when it stops."""
    metrics = GuardMetrics.create(bus.metrics.registry, TenantLabels(bus.settings.metrics_tenants))
    warm()
    policies = Policies(load_default(), on_loaded=metrics.loaded, on_refused=metrics.refused)
    tally = Tally(bus.settings.worker, datetime.now(UTC))
    async with following(bus.js, policies), publishing(bus, tally):
        guard = Guard(bus, policies, Prices.of(bus.settings), metrics, tally)
        async with asyncio.TaskGroup() as group:
            group.create_task(approvals.serve(bus, metrics.tenant_label))
            await bus.consumers.consume(CONSUMER, guard.handle, on_dead_letter=guard.on_dead_letter)


SERVICE = Service(name="guard", default_port=9101, serve=serve)
