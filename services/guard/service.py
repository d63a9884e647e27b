"""The guard service: judge each request, reserve its estimated cost, and queue it for its role.

Every step is idempotent, so a redelivered request changes nothing the second time: events carry a
per-task dedup id, the budget answers a repeated reserve with the same reservation, and the assignment's
dedup id is the request id.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from prometheus_client import CollectorRegistry, Counter, Histogram

from maestro import runtime, topics
from maestro.bus import Bus, Consumer, Delivery
from maestro.errors import Reject, RemoteError, Retry
from maestro.runtime import Service
from proto.v1 import (
    Accepted,
    AwaitingApproval,
    Decision,
    Queued,
    Rejected,
    Reserve,
    TaskAssignment,
    TaskId,
    TaskRequest,
    Tenant,
    Violation,
)
from services.guard import credentials
from services.guard.engine import POLICY_VERSION, GuardLimits, estimate, evaluate

log = logging.getLogger(__name__)

ORIGIN = "guard"
CONSUMER = Consumer(
    stream=topics.STREAM_REQUESTS,
    durable=topics.DURABLE_GUARD,
    filter_subject=topics.REQUESTS.all,
    type=TaskRequest,
    origin=ORIGIN,
)
_EVAL_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25)


@dataclass(frozen=True)
class GuardMetrics:
    """What the guard decided, by verdict and deciding rule, and how long judging took."""

    decisions: Counter
    eval_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> GuardMetrics:
        """Register the guard's metrics on `registry`."""
        return cls(
            decisions=Counter(
                "maestro_guard_decisions_total",
                "Requests decided, by verdict and the rule that decided it ('none' when allowed)",
                ["verdict", "rule"],
                registry=registry,
            ),
            eval_seconds=Histogram(
                "maestro_guard_eval_seconds",
                "Time the policy engine took to judge one request",
                buckets=_EVAL_BUCKETS,
                registry=registry,
            ),
        )


class _Envelope(msgspec.Struct):
    """Just enough of a request that did not decode to tell its sender."""

    id: TaskId | None = None
    tenant: Tenant | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)


@dataclass(frozen=True)
class Guard:
    """The guard's handlers, with the bus they publish on and the limits they judge by."""

    bus: Bus
    limits: GuardLimits
    metrics: GuardMetrics

    async def handle(self, request: TaskRequest, delivery: Delivery) -> None:
        """Judge one request and publish the outcome; raises Retry when the budget cannot answer now."""
        started = time.perf_counter()
        decision = evaluate(request, delivery.size, self.limits)
        self.metrics.eval_seconds.observe(time.perf_counter() - started)

        publish = functools.partial(self.bus.publish, traceparent=delivery.traceparent)
        now = datetime.now(UTC)
        subject = topics.EVENTS.subject(request.tenant, request.id)
        # A label that holds a credential must not reach the audit log; the verdict says which one.
        leaked_label = any(v.location.startswith("labels[") for v in decision.violations)
        accepted = Accepted(
            task_id=request.id,
            tenant=request.tenant,
            at=now,
            role=request.role,
            parent=request.parent,
            labels={} if leaked_label else request.labels,
            model=request.model,
            prompt_chars=len(request.prompt),
            context_files=len(request.context),
            commands=len(request.commands),
        )
        await publish(subject, accepted, msg_id=topics.event_msg_id(request.id, "accepted"))
        verdict_id = topics.event_msg_id(request.id, "verdict")

        match decision.verdict:
            case "deny":
                self._count(decision)
                reason = _reason(decision)
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
                self._count(decision)
                await publish(
                    subject,
                    AwaitingApproval(
                        task_id=request.id,
                        tenant=request.tenant,
                        at=now,
                        decision=decision,
                        reason=_reason(decision),
                    ),
                    msg_id=verdict_id,
                )
                return
            case "allow" | "redact":
                # Nothing redacts yet: the policy engine of issue 4 returns the masked request with it.
                pass

        expected = estimate(request, self.limits)
        try:
            reservation = await self.bus.request(
                topics.BUDGET_RESERVE,
                Reserve(
                    tenant=request.tenant,
                    task_id=request.id,
                    estimate_micro_usd=expected.micro_usd,
                    estimate_tokens=expected.tokens,
                    ttl_s=self.bus.settings.reservation_ttl_s,
                ),
            )
        except RemoteError as exc:
            if exc.code == 400:
                # The budget will never accept this reservation; the dead-letter hook fails the task.
                raise Reject(f"budget refused the reservation: {exc.description}") from None
            log.warning(
                "budget unavailable (%s); retrying",
                exc,
                extra={"task_id": request.id, "tenant": request.tenant},
            )
            raise Retry(1.0, f"budget unavailable: {exc}") from None

        now = datetime.now(UTC)
        if not reservation.granted:
            refused = Decision(
                verdict="deny",
                violations=[
                    Violation(
                        policy="budget",
                        rule_id="budget.insufficient",
                        severity="medium",
                        location="tenant",
                        message=(
                            f"the estimated cost {expected.micro_usd} micro-USD does not fit the "
                            f"{reservation.remaining_micro_usd} micro-USD left in the budget of "
                            f"{request.tenant}" + (f": {reservation.reason}" if reservation.reason else "")
                        ),
                        fix="raise the tenant's budget limit or wait for held reservations to settle",
                    )
                ],
                policy_version=decision.policy_version,
                estimate_micro_usd=expected.micro_usd,
            )
            self._count(refused)
            await publish(
                subject,
                Rejected(
                    task_id=request.id,
                    tenant=request.tenant,
                    at=now,
                    decision=refused,
                    reason=_reason(refused),
                ),
                msg_id=verdict_id,
            )
            log.info("rejected: over budget", extra={"task_id": request.id, "tenant": request.tenant})
            return

        self._count(decision)
        await publish(
            subject,
            Queued(
                task_id=request.id,
                tenant=request.tenant,
                at=now,
                role=request.role,
                decision=decision,
                reservation_id=reservation.reservation_id,
            ),
            msg_id=verdict_id,
        )
        # After the Queued event is stored, so a worker's Started can never precede it in the audit log.
        await publish(
            topics.TASKS.subject(request.role),
            TaskAssignment(request=request, decision=decision, reservation_id=reservation.reservation_id),
            msg_id=request.id,
        )

    async def on_dead_letter(self, data: bytes, reason: str) -> None:
        """Fail the task of a request that went to the DLQ, when its id and tenant can be read."""
        try:
            envelope = _envelope_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        if envelope.id is None or envelope.tenant is None:
            return
        # The reason may quote a field's value, which is the sender's input and may hold a secret.
        safe_reason = credentials.redact(reason)
        undecodable = reason.startswith("undecodable")
        decision = Decision(
            verdict="deny",
            violations=[
                Violation(
                    policy="input" if undecodable else "guard",
                    rule_id="input.undecodable" if undecodable else "guard.dead-letter",
                    severity="medium",
                    location="request",
                    message=safe_reason,
                    fix="send a request that matches the TaskRequest schema"
                    if undecodable
                    else "see the dead letter in the DLQ; resubmit under a new id once the cause is fixed",
                )
            ],
            policy_version=POLICY_VERSION,
        )
        self._count(decision)
        await self.bus.publish(
            topics.EVENTS.subject(envelope.tenant, envelope.id),
            Rejected(
                task_id=envelope.id,
                tenant=envelope.tenant,
                at=datetime.now(UTC),
                decision=decision,
                reason=f"{'invalid request' if undecodable else 'not handled'}: {safe_reason}",
            ),
            msg_id=topics.event_msg_id(envelope.id, "verdict"),
        )
        log.info("rejected an invalid request", extra={"task_id": envelope.id, "tenant": envelope.tenant})

    def _count(self, decision: Decision) -> None:
        rule = decision.violations[0].rule_id if decision.violations else "none"
        self.metrics.decisions.labels(decision.verdict, rule).inc()


def _reason(decision: Decision) -> str:
    """One line naming the rules broken and where (the first five), never the evidence."""
    shown = "; ".join(f"{v.rule_id} at {v.location}" for v in decision.violations[:5])
    more = len(decision.violations) - 5
    return f"{decision.verdict}: {shown}" + (f" (and {more} more)" if more > 0 else "")


async def serve(bus: Bus) -> None:
    """Judge requests from the durable `guard` consumer until bus.stop()."""
    guard = Guard(bus, GuardLimits.from_settings(bus.settings), GuardMetrics.create(bus.metrics.registry))
    await bus.consume(CONSUMER, guard.handle, on_dead_letter=guard.on_dead_letter)


SERVICE = Service(name="guard", default_port=9101, serve=serve)


def main() -> None:
    """`python -m services.guard`."""
    runtime.main(SERVICE)
