"""Isolation on NATS: a real nats-server running `maestro nats-config`'s configuration, the services under
their own credentials, and each attack of issue 13 tried by a tenant's publisher or by the agents.

What each attacker sees is what nats-py shows it: a permissions violation through the connection's error
callback (the server drops what it refuses), and no answer to a JetStream request; what the mesh sees is
that nothing was stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError

from maestro import codec, topics
from maestro.access import nats_config
from maestro.bus import Bus
from maestro.client import publish_request
from maestro.embedded import EmbeddedServer, start_nats_server
from maestro.history import read_events
from maestro.runtime import credentials, open_bus, running_service
from maestro.settings import Settings
from proto.v1 import Decision, SetBudget, Succeeded, TaskAssignment, TaskEvent, TaskRequest
from services.agents.service import SERVICE as AGENTS
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from services.orchestrator.service import SERVICE as ORCHESTRATOR

TENANTS = ("acme", "globex")
_REFUSED_WITHIN_S = 5.0
_UNANSWERED_S = 0.5
"""How long an attacker waits for the answer to a request the server refused (none comes)."""


@dataclass(frozen=True)
class Secured:
    """A server running the generated configuration, provisioned by admin."""

    server: EmbeddedServer
    auth: Path
    settings: Settings

    def as_(self, principal: str) -> Settings:
        """Settings that connect with one principal's credentials."""
        return dataclasses.replace(self.settings, nats_creds=str(nats_config.seed_file(self.auth, principal)))


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Secured]:
    auth = tmp_path / "auth"
    nats_config.write(auth, TENANTS)
    server = start_nats_server(
        tmp_path / "jetstream", config=auth / nats_config.CONFIG_FILE, log_file=tmp_path / "nats-server.log"
    )
    settings = Settings(
        nats_url=server.url,
        sandbox="none",
        data_dir=str(tmp_path / "maestro"),
        http_port=0,
        ack_wait_s=2.0,
        request_timeout_s=2.0,
        worker="test-worker",
        auth=False,
    )
    try:
        yield Secured(server, auth, settings)
    finally:
        server.stop()


@pytest.fixture
async def admin(secured: Secured) -> AsyncIterator[Bus]:
    """Admin's bus: it provisions every stream and bucket, as `maestro up --nats-auth` does first."""
    async with open_bus(secured.as_("admin"), "maestro-admin") as bus:
        yield bus


@dataclass
class Attacker:
    """A raw nats-py connection with one principal's credentials, and the errors the server sent it."""

    nc: NatsClient
    js: JetStreamContext
    errors: asyncio.Queue[str]
    seen: list[str] = dataclasses.field(default_factory=list)

    async def refused(self, verb: str, subject: str) -> None:
        """Wait for the server's permissions violation for `verb` ("publish", "subscription") to `subject`."""
        wanted = f'permissions violation for {verb} to "{subject}"'.lower()
        async with asyncio.timeout(_REFUSED_WITHIN_S):
            while not any(wanted in error.lower() for error in self.seen):
                self.seen.append(await self.errors.get())


async def _unanswered(*attempts: Awaitable[object]) -> None:
    """Each attempt (all at once) gets no answer: the server dropped the request it refused."""
    for outcome in await asyncio.gather(*attempts, return_exceptions=True):
        assert isinstance(outcome, nats.errors.TimeoutError), outcome


ConnectAs = Callable[[str], Awaitable[Attacker]]
"""Connects as a principal (its name: `tenant-acme`, `agents`) and gives the attacker's connection."""


@pytest.fixture
async def connect_as(secured: Secured, admin: Bus) -> AsyncIterator[ConnectAs]:
    async with AsyncExitStack() as stack:

        async def connect(principal: str) -> Attacker:
            errors: asyncio.Queue[str] = asyncio.Queue()

            async def collect(exc: Exception) -> None:
                errors.put_nowait(str(exc))

            nc = await nats.connect(
                secured.settings.nats_url,
                error_cb=collect,
                max_reconnect_attempts=0,
                **credentials(str(nats_config.seed_file(secured.auth, principal))),
            )
            stack.push_async_callback(nc.close)
            return Attacker(nc, nc.jetstream(timeout=_UNANSWERED_S), errors)

        yield connect


def _request(tenant: str, **more: object) -> TaskRequest:
    return TaskRequest(tenant=tenant, role="tester", prompt="run the tests", **more)  # type: ignore[arg-type]


async def _stored_on(admin: Bus, stream: str, subject: str) -> bool:
    try:
        await admin.js.get_last_msg(stream, subject)
    except NotFoundError:
        return False
    return True


async def _events_seen_by(js: JetStreamContext, tenant: str, task_id: str, until: type) -> list[TaskEvent]:
    """A task's events as its tenant reads them: a named consumer whose filter the server checks."""
    name = f"watch-{task_id}"
    await js.add_consumer(
        topics.STREAM_EVENTS,
        ConsumerConfig(
            name=name,
            filter_subject=topics.EVENTS.subject(tenant, task_id),
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        ),
    )
    sub = await js.pull_subscribe_bind(name, stream=topics.STREAM_EVENTS)
    seen: list[TaskEvent] = []
    while not any(isinstance(e, until) for e in seen):
        try:
            msgs = await sub.fetch(16, timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        seen += [codec.decode(TaskEvent, m.data) for m in msgs]  # type: ignore[arg-type]
    return seen


async def test_a_tenants_task_runs_to_success_and_forgeries_are_refused_by_the_server(
    secured: Secured, admin: Bus, connect_as: ConnectAs, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        for service, principal in (
            (ORCHESTRATOR, "orchestrator"),
            (BUDGET, "budget"),
            (AGENTS, "agents"),
            (GUARD, "guard"),
        ):
            await stack.enter_async_context(running_service(service, secured.as_(principal)))
        publisher = await stack.enter_async_context(open_bus(secured.as_("tenant-acme"), "acme"))
        ran = tmp_path / "ran"
        request = _request("acme", commands=[f"touch {ran}"])
        await publish_request(publisher, request, None)
        async with asyncio.timeout(20):
            events = await _events_seen_by(publisher.js, "acme", request.id, Succeeded)
        assert ran.exists()
        assert [e.task_id for e in events] == [request.id] * len(events)

        # A forged assignment straight to the tester, from a tenant and from the agents: never stored, so it
        # never runs (its command would leave its file).
        forged_ran = tmp_path / "forged"
        forged = TaskAssignment(
            request=_request("globex", commands=[f"touch {forged_ran}"]), decision=Decision(verdict="allow")
        )
        subject = topics.TASKS.subject("tester", "globex")
        for principal in ("tenant-acme", "agents"):
            attacker = await connect_as(principal)
            await attacker.nc.publish(subject, codec.encode(forged))
            await attacker.refused("publish", subject)
        assert not await _stored_on(admin, topics.STREAM_TASKS, subject)

        # A forged success for another tenant's task, and for its own.
        acme = await connect_as("tenant-acme")
        for tenant in ("globex", "acme"):
            lie = Succeeded(
                task_id=request.id, tenant=tenant, at=datetime.now(UTC), worker="forger", output="all good"
            )
            subject = topics.EVENTS.subject(tenant, request.id)
            with pytest.raises(nats.errors.TimeoutError):
                await acme.js.publish(subject, codec.encode(lie))
            await acme.refused("publish", subject)
        assert not any(getattr(e, "worker", "") == "forger" for e in await read_events(admin.js, request.id))
    assert not forged_ran.exists()


async def test_a_tenant_publishes_only_its_own_requests(admin: Bus, connect_as: ConnectAs) -> None:
    acme = await connect_as("tenant-acme")
    own = topics.REQUESTS.subject("acme")
    ack = await acme.js.publish(own, codec.encode(_request("acme")))
    assert ack.stream == topics.STREAM_REQUESTS
    theirs = topics.REQUESTS.subject("globex")
    with pytest.raises(nats.errors.TimeoutError):
        await acme.js.publish(theirs, codec.encode(_request("globex")))
    await acme.refused("publish", theirs)
    assert not await _stored_on(admin, topics.STREAM_REQUESTS, theirs)


async def test_a_tenant_reads_its_own_events_and_never_anothers(admin: Bus, connect_as: ConnectAs) -> None:
    for tenant in TENANTS:
        event = Succeeded(task_id=f"t-{tenant}", tenant=tenant, at=datetime.now(UTC), worker="w")
        await admin.js.publish(topics.EVENTS.subject(tenant, event.task_id), codec.encode(event))
    acme = await connect_as("tenant-acme")
    async with asyncio.timeout(5):
        [mine] = await _events_seen_by(acme.js, "acme", "t-acme", Succeeded)
    assert mine.tenant == "acme"

    # Core NATS: no subscription to another tenant's events (nor to its own: they are read stored).
    for filter_ in (topics.EVENTS.all, "maestro.v1.evt.globex.>"):
        await acme.nc.subscribe(filter_)
        await acme.refused("subscription", filter_)
    # JetStream: a consumer filtered on another's events, on every tenant's, or with the filter in its body.
    filters = {
        "w1": topics.EVENTS.subject("globex", "t-globex"),
        "w2": topics.EVENTS.where(task_id="t-globex"),
    }
    await _unanswered(
        *(
            acme.js.add_consumer(
                topics.STREAM_EVENTS,
                ConsumerConfig(name=name, filter_subject=filter_, ack_policy=AckPolicy.NONE),
            )
            for name, filter_ in filters.items()
        ),
        acme.js.add_consumer(
            topics.STREAM_EVENTS,
            ConsumerConfig(filter_subjects=["maestro.v1.evt.acme.>", "maestro.v1.evt.globex.>"]),
        ),
    )
    for name, filter_ in filters.items():
        await acme.refused(
            "publish", topics.js_api("CONSUMER", "CREATE", topics.STREAM_EVENTS, name, filter_)
        )
    await acme.refused("publish", topics.js_api("CONSUMER", "CREATE", topics.STREAM_EVENTS))
    # The filter named in the subject is the one the server applies: a body asking for another is refused.
    lying = await acme.nc.request(
        topics.js_api("CONSUMER", "CREATE", topics.STREAM_EVENTS, "w3", "maestro.v1.evt.acme.>"),
        codec.encode(
            {
                "stream_name": topics.STREAM_EVENTS,
                "config": {"name": "w3", "filter_subject": "maestro.v1.evt.globex.>", "ack_policy": "none"},
            }
        ),
        timeout=2,
    )
    assert b'"error"' in lying.data
    # Nor pulling from the orchestrator's durable consumer, which sees every tenant's events.
    await admin.js.add_consumer(
        topics.STREAM_EVENTS,
        ConsumerConfig(durable_name=topics.DURABLE_ORCHESTRATOR, ack_policy=AckPolicy.EXPLICIT),
    )
    stolen = await acme.js.pull_subscribe_bind(topics.DURABLE_ORCHESTRATOR, stream=topics.STREAM_EVENTS)
    with pytest.raises(nats.errors.TimeoutError):
        await stolen.fetch(1, timeout=_UNANSWERED_S)
    await acme.refused(
        "publish", topics.consumer_next_subject(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR)
    )


async def test_nobody_reads_another_users_replies(secured: Secured, connect_as: ConnectAs) -> None:
    globex_inbox = nats_config.read_identity(
        nats_config.seed_file(secured.auth, "tenant-globex")
    ).inbox_prefix
    guard_inbox = nats_config.read_identity(nats_config.seed_file(secured.auth, "guard")).inbox_prefix
    acme = await connect_as("tenant-acme")
    for filter_ in (f"{globex_inbox}.>", f"{guard_inbox}.>", "_INBOX.>", ">"):
        await acme.nc.subscribe(filter_)
        await acme.refused("subscription", filter_)
    agents = await connect_as("agents")
    await agents.nc.subscribe(f"{guard_inbox}.>")
    await agents.refused("subscription", f"{guard_inbox}.>")


@pytest.mark.parametrize("principal", ["tenant-acme", "agents"])
async def test_records_budgets_and_policy_are_written_by_their_owners_only(
    admin: Bus, connect_as: ConnectAs, principal: str
) -> None:
    attacker = await connect_as(principal)
    buckets = [topics.BUCKET_TASKS, topics.BUCKET_BUDGET, topics.BUCKET_POLICY, topics.BUCKET_TOKENS]
    subjects = {
        bucket: topics.kv_subject(
            bucket, topics.POLICY_BUNDLE_KEY if bucket == topics.BUCKET_POLICY else "globex"
        )
        for bucket in buckets
    }
    await _unanswered(*(attacker.js.publish(s, b"default: {credentials: audit}") for s in subjects.values()))
    for bucket, subject in subjects.items():
        await attacker.refused("publish", subject)
        assert not await _stored_on(admin, topics.kv_stream(bucket), subject)


@pytest.mark.parametrize("principal", ["tenant-acme", "agents", "guard"])
async def test_no_tenant_agent_or_guard_sets_a_budget_purges_a_stream_or_deletes_one(
    admin: Bus, connect_as: ConnectAs, principal: str
) -> None:
    attacker = await connect_as(principal)
    set_zero = topics.BUDGET_SET.partition_subject("globex")
    zero = codec.encode(SetBudget(tenant="globex", limit_micro_usd=0))
    await _unanswered(
        attacker.nc.request(set_zero, zero, timeout=_UNANSWERED_S),
        attacker.js.purge_stream(topics.STREAM_EVENTS),
        attacker.js.delete_stream(topics.STREAM_TASKS),
        # What js.delete_msg sends, with a timeout it takes none of.
        attacker.nc.request(
            topics.message_delete_subject(topics.STREAM_REQUESTS), b'{"seq": 1}', timeout=_UNANSWERED_S
        ),
    )
    await attacker.refused("publish", set_zero)
    await attacker.refused("publish", topics.stream_purge_subject(topics.STREAM_EVENTS))
    await attacker.refused("publish", topics.js_api("STREAM", "DELETE", topics.STREAM_TASKS))
    await attacker.refused("publish", topics.message_delete_subject(topics.STREAM_REQUESTS))
    assert (await admin.js.stream_info(topics.STREAM_TASKS)).config.name == topics.STREAM_TASKS


async def test_a_tenant_claims_its_ids_once_and_cannot_take_anothers(admin: Bus, secured: Secured) -> None:
    from maestro import claims

    async with (
        open_bus(secured.as_("tenant-acme"), "acme") as acme,
        open_bus(secured.as_("tenant-globex"), "globex") as globex,
    ):
        assert await claims.claim(globex, "t-taken", "globex", "digest-1") is claims.Seen.NEW
        assert await claims.claim(acme, "t-mine", "acme", "digest-2") is claims.Seen.NEW
        with pytest.raises(claims.IdConflict):
            await claims.claim(acme, "t-taken", "acme", "digest-1")
        # Written over without the compare-and-set: the server keeps the first claim.
        with pytest.raises(nats.errors.Error):
            await acme.js.publish(
                topics.kv_subject(topics.BUCKET_CLAIMS, "t-taken"), b'{"tenant":"acme","digest":"digest-1"}'
            )
        owner = await claims.owner_of(admin, "t-taken")
    assert owner is not None and owner.tenant == "globex"
