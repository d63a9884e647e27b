"""The SDK: submit requests, read a task's record and events, watch it, wait for it to finish; and the
administration the HTTP API's admin routes do (budgets, the policy bundle, API tokens), over NATS.

Every operation of the HTTP API has its call here, with the same msgspec types, or a reason in
maestro/operations.py why not (tests/maestro/test_sdk_parity.py holds the two together).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Literal

from msgspec import structs
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import (
    budget_history,
    claims,
    codec,
    deploy_gate,
    gates,
    history,
    listing,
    topics,
    tracing,
)
from maestro.access.grants import mint
from maestro.access.token_store import TokenStore
from maestro.bus import Bus
from maestro.cancel import cancel
from maestro.errors import MaestroError, NotFound, RemoteError
from maestro.listing import Page
from maestro.retry_now import retry_now
from maestro.runtime import open_bus
from maestro.scan import scan
from maestro.settings import Settings
from maestro.since import parse_since, start_of
from proto.v1 import (
    ENDING_EVENTS,
    TERMINAL_STATES,
    ApprovalDecision,
    BudgetHistory,
    Cancelled,
    GetLedger,
    LedgerView,
    Retrying,
    SetBudget,
    TaskEvent,
    TaskRecord,
    TaskRequest,
)
from proto.v1.access import ALL_TENANTS, IssuedToken, TokenRequest, TokenView
from proto.v1.gates import GateAnswer, GateAsker, GateDecided
from proto.v1.guard import PolicyInForce
from proto.v1.scheduling import WaitingTasks
from proto.v1.workflows import WORKFLOW_ENDED, Step, Workflow, WorkflowControl, WorkflowRecord


class NotAwaitingApproval(MaestroError):
    """The task is not (or no longer) awaiting approval, or someone decided on it already."""


_CLAIMED = {topics.HEADER_CLAIMED: "1"}


async def publish_request(bus: Bus, request: TaskRequest, traceparent: str | None) -> None:
    """Claim the request's id and publish it for the guard (the SDK and the HTTP API submit this way).

    The dedup id holds the content's fingerprint, so that inside the duplicate window a request that
    conflicts still reaches the guard instead of being dropped in silence. Raises IdConflict.
    """
    # As the guard will read it: a request built in Python may hold an int where the wire has a float
    # (`Timeouts(start_to_close_s=1)`), and the guard's fingerprint of the decoded request must be this one.
    request = codec.decode(TaskRequest, codec.encode(request))
    fingerprint = claims.digest(request)
    await claims.claim(bus, request.id, request.tenant, fingerprint)
    await bus.streams.publish(
        topics.REQUESTS.at(request.tenant),
        request,
        msg_id=topics.request_msg_id(request.id, fingerprint),
        traceparent=traceparent,
        headers=_CLAIMED,
    )


async def publish_workflow(bus: Bus, workflow: Workflow, traceparent: str | None) -> str:
    """Publish a workflow for the orchestrator to start (the SDK and the HTTP API submit this way)."""
    workflow = codec.decode(Workflow, codec.encode(workflow))  # as the orchestrator will read it
    await bus.streams.publish(
        topics.WORKFLOWS.at(workflow.tenant),
        workflow,
        msg_id=topics.request_msg_id(workflow.id, claims.digest(workflow)),
        traceparent=traceparent,
    )
    return workflow.id


_TOKEN_ID = re.compile(r"^[0-9a-f]{16}$")

_WAITS_PER_QUESTION = 1000
"""Most task ids one question to the dispatcher names (proto.v1.scheduling.WaitingTasks)."""


def _since(given: datetime | str | None) -> datetime | None:
    """A listing's `since`: a time, or the text the API takes (`1h`, an ISO 8601 time with its zone); raises
    listing.BadParameter for text it cannot read."""
    if given is None or isinstance(given, datetime):
        return given
    try:
        return start_of(given, datetime.now(UTC))
    except ValueError as exc:
        raise listing.BadParameter("since", str(exc)) from None


class Client:
    """A user's handle on Maestro over NATS."""

    def __init__(self, bus: Bus, records: KeyValue) -> None:
        self.bus = bus
        self._records = records
        self._tokens = TokenStore(bus)

    async def submit(self, request: TaskRequest, *, traceparent: str | None = None) -> str:
        """Publish a request for the guard; the same request twice is one task. Returns the task id.

        Raises IdConflict (maestro.claims) when the id belongs to another tenant's task or to a request
        with other content, RemoteError(413) when the request is too large.
        """
        size = len(codec.encode(request))
        if size > self.bus.settings.max_request_bytes:
            raise RemoteError(
                413, f"request is {size} bytes; the limit is {self.bus.settings.max_request_bytes}"
            )
        await publish_request(self.bus, request, traceparent or tracing.new_traceparent())
        return request.id

    async def get(self, task_id: str) -> TaskRecord:
        """The task's current record; raises NotFound when nothing of it is stored (yet).

        Until the orchestrator writes a task's record (its first events wait up to MAESTRO_RECORD_LINGER_S
        to be written together), the record is what its stored events make."""
        with contextlib.suppress(KeyNotFoundError):
            entry = await self._records.get(task_id)
            if entry.value:
                return codec.decode(TaskRecord, entry.value)
        folded = await history.folded(self.bus.js, task_id)
        if folded is None:
            raise NotFound(f"no task {task_id}")
        return folded

    async def tasks(
        self,
        *,
        tenant: str | None = None,
        states: Iterable[str] = (),
        role: str | None = None,
        labels: Mapping[str, str] | None = None,
        limit: int = listing.DEFAULT_LIMIT,
        cursor: str | None = None,
        since: datetime | str | None = None,
    ) -> Page[TaskRecord]:
        """One page of task records, newest first, passing every filter given (`states`: any of them,
        `labels`: all); pass its `next_cursor` back as `cursor` for the next page.

        Reads the whole bucket for every page (maestro/scan.py). Raises
        listing.BadParameter for a filter that cannot be used, listing.TooMany for a bucket too large to read.
        """
        query = listing.query(
            listing.TASKS,
            tenant=tenant,
            states=states,
            role=role,
            labels=labels,
            limit=limit,
            cursor=cursor,
            since=_since(since),
        )
        return await scan(self.bus.js, topics.BUCKET_TASKS, query, TaskRecord, lambda r: r.role)

    async def events(self, task_id: str) -> list[TaskEvent]:
        """Every event of the task so far, oldest first."""
        return await history.read_events(self.bus.js, task_id)

    async def watch(self, task_id: str) -> AsyncIterator[TaskEvent]:
        """The task's events as they happen, ending after its terminal event."""
        async for event in history.follow_events(self.bus.js, task_id):
            yield event
            if isinstance(event, ENDING_EVENTS):
                return

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskRecord:
        """Wait until the task's record is terminal and return it; raises TimeoutError."""
        async with asyncio.timeout(timeout):
            async for _ in self.watch(task_id):
                pass
            # The terminal event is stored; the orchestrator folds it into the record a moment later.
            delay = 0.01
            while True:
                try:
                    record = await self.get(task_id)
                    if record.state in TERMINAL_STATES:
                        return record
                except NotFound:
                    pass
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def approve(self, task_id: str, *, by: str = "", reason: str = "") -> ApprovalDecision:
        """Approve a task awaiting approval; the guard then reserves its budget and queues it.

        Raises NotFound for an unknown task and NotAwaitingApproval when it is not awaiting approval.
        """
        return await self._decide(task_id, approved=True, by=by, reason=reason)

    async def reject(self, task_id: str, *, reason: str, by: str = "") -> ApprovalDecision:
        """Reject a task awaiting approval; raises like approve()."""
        return await self._decide(task_id, approved=False, by=by, reason=reason)

    async def _decide(self, task_id: str, *, approved: bool, by: str, reason: str) -> ApprovalDecision:
        record = await self.get(task_id)
        if record.state != "awaiting_approval":
            raise NotAwaitingApproval(f"task {task_id} is {record.state}, not awaiting approval")
        decision = ApprovalDecision(
            task_id=task_id,
            tenant=record.tenant,
            approved=approved,
            by=by or "sdk",
            reason=reason,
            at=datetime.now(UTC),
        )
        ack = await self.bus.streams.publish(
            topics.APPROVALS.at(record.tenant),
            decision,
            msg_id=topics.approval_msg_id(task_id, record.tenant),
        )
        if ack.duplicate:
            raise NotAwaitingApproval(f"task {task_id} was decided already")
        return decision

    async def cancel(self, task_id: str, *, by: str = "", reason: str = "") -> Cancelled:
        """Cancel a task that has not ended: it does not run, or its worker stops it; its hold is released.

        Raises NotFound for an unknown task and cancel.AlreadyEnded when it ended (or another end won).
        """
        return await cancel(self.bus, await self.get(task_id), by=by or "sdk", reason=reason)

    async def retry_now(self, task_id: str, *, by: str = "", reason: str = "") -> Retrying:
        """Run a task that waits for its next attempt now, not when its back-off ends.

        Raises NotFound for an unknown task and retry_now.NotWaiting when it waits for no retry (or its
        attempt is starting already).
        """
        return await retry_now(self.bus, await self.get(task_id), by=by or "sdk", reason=reason)

    # -- workflows ---------------------------------------------------------------------------------------
    async def run_workflow(self, workflow: Workflow, *, traceparent: str | None = None) -> str:
        """Publish a workflow for the orchestrator to start; the same workflow twice is one. Returns its id.

        A conflicting id (another tenant's, another definition) is dead-lettered by the orchestrator with
        the reason; `workflow()` then finds no such workflow, or the first one.
        """
        return await publish_workflow(self.bus, workflow, traceparent)

    async def chain(
        self,
        tenant: str,
        steps: Sequence[Step],
        *,
        workflow_id: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> str:
        """Run `steps` one after the other (each needs the one before, as well as what it names)."""
        linked = [
            structs.replace(step, needs=[*step.needs, steps[i - 1].name])
            if i and steps[i - 1].name not in {n.step for n in step.edges()}
            else step
            for i, step in enumerate(steps)
        ]
        workflow = Workflow(tenant=tenant, steps=linked, labels=labels or {})
        if workflow_id is not None:
            workflow = structs.replace(workflow, id=workflow_id)
        return await self.run_workflow(workflow)

    async def workflow(self, workflow_id: str) -> WorkflowRecord:
        """The workflow's record; raises NotFound when the orchestrator has not started it (yet)."""
        try:
            entry = await (await self.bus.js.key_value(topics.BUCKET_WORKFLOWS)).get(workflow_id)
        except KeyNotFoundError:
            raise NotFound(f"no workflow {workflow_id}") from None
        if entry.value is None:
            raise NotFound(f"no workflow {workflow_id}")
        return codec.decode(WorkflowRecord, entry.value)

    async def workflows(
        self,
        *,
        tenant: str | None = None,
        states: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        limit: int = listing.DEFAULT_LIMIT,
        cursor: str | None = None,
        since: datetime | str | None = None,
    ) -> Page[WorkflowRecord]:
        """One page of workflow records, newest first, filtered and paged as tasks() does; raises like it."""
        query = listing.query(
            listing.WORKFLOWS,
            tenant=tenant,
            states=states,
            labels=labels,
            limit=limit,
            cursor=cursor,
            since=_since(since),
        )
        return await scan(self.bus.js, topics.BUCKET_WORKFLOWS, query, WorkflowRecord)

    async def wait_workflow(self, workflow_id: str, timeout: float | None = None) -> WorkflowRecord:
        """Wait until the workflow has ended and return its record; raises TimeoutError."""
        async with asyncio.timeout(timeout):
            delay = 0.01
            while True:
                try:
                    record = await self.workflow(workflow_id)
                    if record.state in WORKFLOW_ENDED:
                        return record
                except NotFound:
                    pass
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)

    async def pause_workflow(self, workflow_id: str, *, by: str = "", reason: str = "") -> WorkflowRecord:
        """Start no new step until resumed (running ones finish); raises NotFound, or RemoteError (400) when
        it has ended."""
        return await self._control(workflow_id, "pause", by, reason)

    async def resume_workflow(self, workflow_id: str, *, by: str = "", reason: str = "") -> WorkflowRecord:
        """Start steps again; raises like pause_workflow()."""
        return await self._control(workflow_id, "resume", by, reason)

    async def cancel_workflow(self, workflow_id: str, *, by: str = "", reason: str = "") -> WorkflowRecord:
        """Cancel every step that has not ended (running ones are stopped); raises like pause_workflow()."""
        return await self._control(workflow_id, "cancel", by, reason)

    async def _control(
        self, workflow_id: str, action: Literal["pause", "resume", "cancel"], by: str, reason: str
    ) -> WorkflowRecord:
        record = await self.workflow(workflow_id)
        order = WorkflowControl(
            workflow_id=workflow_id, tenant=record.tenant, action=action, by=by or "sdk", reason=reason
        )
        return await self.bus.calls.request(topics.WORKFLOW_CONTROL, order)

    async def waits(self, task_ids: Sequence[str]) -> dict[str, str]:
        """Why each of these tasks still waits for its turn (its tenant's limits, or what goes first), from
        the orchestrator's dispatcher; tasks that do not wait for a turn are left out."""
        reasons: dict[str, str] = {}
        for start in range(0, len(task_ids), _WAITS_PER_QUESTION):
            asked = WaitingTasks(task_ids=list(task_ids[start : start + _WAITS_PER_QUESTION]))
            reasons.update((await self.bus.calls.request(topics.DISPATCH_WAITS, asked)).reasons)
        return reasons

    # -- the deploy gate ---------------------------------------------------------------------------------
    async def deploy_gate(
        self,
        *,
        tenant: str,
        repo: str,
        commit: str,
        max_age_s: float = gates.DEFAULT_MAX_AGE_S,
        wait_s: float | None = None,
        by: str = "sdk",
        via: GateAsker = "sdk",
    ) -> GateAnswer:
        """May `commit` of `repo` be deployed in `tenant`? Yes when a tester task labelled with both succeeded
        at most `max_age_s` ago under a guard decision on record (maestro/gates.py has every rule). With
        `wait_s`, waits that long at most while there is no such task yet or it is still running. The answer
        is recorded on the gate's stream as `by`'s decision (GateDecided), whatever it is.

        Raises gates.BadAsk for a short or malformed SHA, a bad repository or tenant name, or a max age out of
        bounds; listing.TooMany for a tasks bucket too large to read.
        """
        ask = gates.Ask.checked(tenant, repo, commit, max_age_s)
        return (await deploy_gate.decide(self.bus, ask, by=by, via=via, wait_s=wait_s)).answer

    async def gate_decisions(
        self, tenant: str, *, repo: str | None = None, commit: str | None = None, limit: int = 20
    ) -> list[GateDecided]:
        """The deploy gate's recorded decisions in `tenant`, newest first, at most `limit`, about `repo` and
        `commit` when given: who asked, the answer, the task that proved it and its policy bundle."""
        return await deploy_gate.decisions(self.bus.js, tenant, repo=repo, commit=commit, limit=limit)

    async def ledger(self, tenant: str) -> LedgerView:
        """A tenant's budget ledger; raises RemoteError when the budget service does not answer."""
        return await self.bus.calls.request(topics.BUDGET_GET, GetLedger(tenant=tenant), key=tenant)

    async def budget_history(self, tenant: str, since: str | None = None) -> BudgetHistory:
        """A tenant's spend over time (the budget's samples, the last of each of 240 steps) and the budget
        alerts that fired, from `since` (`2026-12-03T07:00:00Z`, `30m`, `1h`, `7d`; default 24 hours ago)
        until now. Raises ValueError for a `since` that is neither, over 7 days back or in the future."""
        now = datetime.now(UTC)
        return await budget_history.read_history(self.bus.js, tenant, parse_since(since, now), now)

    # -- administration: what the HTTP API's admin routes do for an operator ------------------------------
    async def set_budget(self, change: SetBudget) -> LedgerView:
        """Change a tenant's budget, or a role's or model's sub-limit (fields left None stay as they are),
        through the budget service; returns the ledger after the change.

        Raises RemoteError: 400 for a change the budget service refuses (the description says why), 503 when
        it does not answer.
        """
        return await self.bus.calls.request(topics.BUDGET_SET, change, key=change.tenant)

    async def policy(self) -> PolicyInForce:
        """The policy bundle the guards judge by: version, hash, who pushed it when, and its YAML.

        Raises maestro.policy.bundle_store.StoredBundleError (its `problems` say what) when the stored
        bundle does not validate; the guards then keep the one they had.
        """
        from maestro.policy import bundle_store  # loads the policy engine's libraries: only when asked

        return await bundle_store.in_force_view(self.bus.js)

    async def push_policy(self, yaml: bytes | str, *, tenant: str | None = None, by: str) -> PolicyInForce:
        """Validate a bundle (with `tenant`: that tenant's override, merged into the stored bundle) and
        store it as `by`'s push; running guards switch to it. Returns the bundle then in force.

        Raises maestro.policy.bundle.BundleError when the bundle has problems (`problems` names each with its
        line), StoredBundleError when an override cannot be merged because the stored bundle does not
        validate, TimeoutError when other pushes kept changing the bundle meanwhile.
        """
        from maestro.policy import bundle_store

        text = yaml.encode() if isinstance(yaml, str) else yaml
        await bundle_store.push(self.bus.js, text, tenant, by=by)
        return await bundle_store.in_force_view(self.bus.js)

    async def reset_policy(self, *, by: str) -> PolicyInForce:
        """Go back to the shipped bundle, recorded like a push (who, when); returns it as in force."""
        from maestro.policy import bundle_store

        await bundle_store.reset(self.bus.js, by=by)
        return await bundle_store.in_force_view(self.bus.js)

    async def create_token(self, request: TokenRequest, *, by: str) -> IssuedToken:
        """Make an API token as `by` (its holder: the request's subject, else `by`) and store its grant.
        The token is in the answer only: the bucket keeps its secret's digest, never the secret.

        Raises RemoteError(400) for a request the HTTP API would refuse (no scope, a bad tenant or subject,
        an expiry without its offset or already past).
        """
        try:
            request = codec.decode_strict(TokenRequest, codec.encode(request))  # as POST /v1/tokens reads it
            minted = mint(
                tenant=request.tenant,
                scopes=request.scopes,
                subject=request.subject or by,
                now=datetime.now(UTC),
                created_by=by,
                expires_at=request.expires_at,
            )
        except ValueError as exc:  # codec.DecodeError is one
            raise RemoteError(400, f"cannot make that token: {exc}") from None
        grant = await self._tokens.add(minted)
        return IssuedToken(token=minted.token, grant=grant.view())

    async def tokens(self, tenant: str = ALL_TENANTS) -> list[TokenView]:
        """The tokens of `tenant` (ALL_TENANTS, `*`: every tenant's), oldest first, never their digests."""
        return [grant.view() for grant in await self._tokens.list(tenant)]

    async def revoke_token(self, token_id: str) -> TokenView:
        """Revoke a token: it stops working at once. Returns it as it was.

        Raises RemoteError(400) when `token_id` is not a token's id (16 hex digits), NotFound when there is
        no such token (never made, or revoked already).
        """
        if not _TOKEN_ID.match(token_id):
            raise RemoteError(400, f"not a token id (16 hex digits): {token_id[:40]!r}")
        grant = await self._tokens.revoke(token_id)
        if grant is None:
            raise NotFound(f"no token {token_id}")
        return grant.view()


@asynccontextmanager
async def open_client(settings: Settings, *, patience_s: float | None = 5.0) -> AsyncIterator[Client]:
    """A connected Client for the length of a block; raises runtime.Unreachable when NATS is not there."""
    async with open_bus(settings, "maestro-client", patience_s=patience_s) as bus:
        records = await bus.js.key_value(topics.BUCKET_TASKS)
        yield Client(bus, records)
