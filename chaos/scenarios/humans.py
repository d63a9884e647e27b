"""human-work: people claim, release and complete human tasks while the orchestrator is SIGKILLed three
times, the guard once and the agents once (issue 19).

Five people serve the `review` queue, one of them a lead: three act through the HTTP API with their `work`
tokens (the orchestrator's kills cut their requests off; they ask again until they get an answer), two
through a Desk on their own NATS connection, as `maestro claim` does (they go on while the orchestrator is
down; it folds what they stored when it is back). Each takes one of the oldest waiting tasks of its inbox
and does what the task's script says (chaos/human_facts.py: complete it, release it, abandon it to a short
lease and renew the next claim, or complete it at the same moment as the lead). Forty standalone tasks
are submitted at a steady rate; six workflows put a human review before a tester step that reads the
answer. Every task must succeed once, with the answer of the one person told they completed it; every
claim a person won must be stored and end (completed, released or lapsed); nothing may be dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp
import msgspec
import nats.errors

from chaos import effects, streams
from chaos.drill import Plan, Stage, staged
from chaos.human_facts import Action, HumanFacts, Kind, Outcome, Told, check_humans, kind_of, move
from chaos.invariants import Report, check
from chaos.load import Planned
from chaos.mesh import MeshError, running_mesh
from chaos.progress import reached
from chaos.scenarios.workflows import Progress, Run
from chaos.workflow_facts import check_workflows
from maestro import codec
from maestro.access.grants import Caller
from maestro.access.token_store import TokenStore
from maestro.client import open_client
from maestro.desk.desk import Desk, DeskError
from maestro.desk.people import PeopleStore
from proto.v1 import Claimed, Released, Succeeded, TaskRecord, TaskRequest
from proto.v1.access import TokenRequest
from proto.v1.humans import Answer, HumanWork, Person
from proto.v1.workflows import Step, Workflow, step_task_id

NAME = "human-work"
TENANT = "acme"
QUEUE = "review"
ROLE = f"human:{QUEUE}"
STANDALONE = 40
WORKFLOWS = 6
SUBMIT_RATE = 3.0
"""Standalone tasks submitted per second: the last ones arrive while the faults go on."""
LAPSE_LEASE_S = 5.0
"""The lease of a task whose first claim is abandoned (the shortest a task may ask)."""
STEP_S = 1.0
"""How long a workflow's tester step runs: the agents are killed with one running."""
THINK_S = (0.2, 0.6)
"""How long a person looks at a task they claimed before they act on it."""
IDLE_S = 0.2
"""How long a person with nothing to claim waits before reading their inbox again."""
PATIENCE_S = 45.0
"""How long a person asks again (connection refused, 503) before giving up on one thing."""
RETRY_S = 0.25
GUARD_AT = 0.3
"""The share of the standalone tasks submitted when the guard is killed."""
ORCHESTRATOR_AT = (0.15, 0.4, 0.65)
"""The share of the human tasks completed at each orchestrator kill."""
DONE_WITHIN_S = 60.0
"""How long the people get to complete everything after the last fault."""
PLAN = Plan(
    tenants=(TENANT,),
    refused_every=0,
    # Half the chaos default: work a killed process held comes back sooner, and the scenario stays short.
    env={"MAESTRO_ACK_WAIT_S": "5"},
    converge_s=30.0,
)
_ERROR = msgspec.json.Decoder(dict[str, object])
_RECORDS = msgspec.json.Decoder(list[TaskRecord])
_TRANSIENT = (nats.errors.Error, TimeoutError, ConnectionError)
E = TypeVar("E", Claimed, Released, Succeeded)


@dataclass(frozen=True)
class Member:
    """Someone of the review team: their id (their token's subject), whether they lead, and how they act."""

    id: str
    lead: bool = False
    over_http: bool = True


TEAM = (
    Member("alice@acme"),
    Member("bob@acme"),
    Member("dave@acme"),
    Member("erin@acme", over_http=False),
    Member("carol@acme", lead=True, over_http=False),
)


@dataclass(frozen=True)
class Answered:
    """What the desk finally said to one request: won (with its event), lost (and why), or nothing."""

    outcome: Outcome
    event: Claimed | Released | Succeeded | None = None
    why: str = ""
    tries: int = 1
    """How often it was asked (more than once: a kill cut it off, or the service was down)."""


class Hands(Protocol):
    """How a person reaches the desk."""

    async def inbox(self) -> list[TaskRecord] | None:
        """The records of their inbox, or None when it could not be read now."""
        ...

    async def claim(self, task_id: str) -> Answered:
        """Claim the task (asking again until there is an answer)."""
        ...

    async def release(self, task_id: str, reason: str) -> Answered:
        """Release the task."""
        ...

    async def complete(self, task_id: str, answer: Answer) -> Answered:
        """Complete the task with `answer`."""
        ...


async def _patiently(ask: Callable[[], Awaitable[Answered | None]]) -> Answered:
    """Ask until an answer comes (None from `ask`: none yet), or PATIENCE_S passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE_S
    for tries in itertools.count(1):
        answered = await ask()
        if answered is not None:
            return dataclasses.replace(answered, tries=tries)
        if loop.time() > deadline:
            return Answered("unknown", why=f"no answer within {PATIENCE_S:.0f}s", tries=tries)
        await asyncio.sleep(RETRY_S)  # the service is coming back; nothing to wait on but time
    raise AssertionError("unreachable")


@dataclass
class HttpHands:
    """A person at the HTTP API, as their token."""

    http: aiohttp.ClientSession
    api_url: str
    token: str

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}

    async def _post(self, path: str, body: object, kind: type[E]) -> Answered:
        async def ask() -> Answered | None:
            try:
                async with self.http.post(
                    f"{self.api_url}{path}", data=msgspec.json.encode(body), headers=self._headers()
                ) as resp:
                    data = await resp.read()
                    if resp.status == 200:
                        return Answered("won", codec.decode(kind, data))
                    if resp.status < 500:
                        return Answered("lost", why=f"{resp.status} {_error_of(data)}")
            except (aiohttp.ClientError, TimeoutError):
                pass  # cut off by a kill, or refused while the orchestrator is down
            return None

        return await _patiently(ask)

    async def inbox(self) -> list[TaskRecord] | None:
        """The inbox as GET /v1/inbox answers it."""
        try:
            async with self.http.get(
                f"{self.api_url}/v1/inbox", params={"queue": QUEUE}, headers=self._headers()
            ) as resp:
                return _RECORDS.decode(await resp.read()) if resp.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def claim(self, task_id: str) -> Answered:
        """POST /v1/tasks/{id}/claim."""
        return await self._post(f"/v1/tasks/{task_id}/claim", {}, Claimed)

    async def release(self, task_id: str, reason: str) -> Answered:
        """POST /v1/tasks/{id}/release."""
        return await self._post(f"/v1/tasks/{task_id}/release", {"reason": reason}, Released)

    async def complete(self, task_id: str, answer: Answer) -> Answered:
        """POST /v1/tasks/{id}/complete."""
        return await self._post(f"/v1/tasks/{task_id}/complete", {"answer": answer}, Succeeded)


def _error_of(data: bytes) -> str:
    try:
        return str(_ERROR.decode(data).get("error", ""))
    except msgspec.DecodeError:
        return data[:200].decode(errors="replace")


@dataclass
class DeskHands:
    """A person at a Desk on their own NATS connection, as `maestro claim` acts."""

    desk: Desk
    caller: Caller

    async def _do(self, doing: Callable[[], Awaitable[E]]) -> Answered:
        async def ask() -> Answered | None:
            try:
                return Answered("won", await doing())
            except DeskError as exc:
                if exc.status < 500:
                    return Answered("lost", why=f"{exc.status} {exc}")
            except _TRANSIENT:
                pass
            return None

        return await _patiently(ask)

    async def inbox(self) -> list[TaskRecord] | None:
        """The inbox as the desk reads it from the records."""
        try:
            return await self.desk.inbox(self.caller, QUEUE)
        except _TRANSIENT:
            return None

    async def claim(self, task_id: str) -> Answered:
        """Desk.claim."""
        return await self._do(lambda: self.desk.claim(self.caller, task_id))

    async def release(self, task_id: str, reason: str) -> Answered:
        """Desk.release."""
        return await self._do(lambda: self.desk.release(self.caller, task_id, reason))

    async def complete(self, task_id: str, answer: Answer) -> Answered:
        """Desk.complete."""
        return await self._do(lambda: self.desk.complete(self.caller, task_id, answer))


@dataclass
class Floor:
    """What the people share: the tasks' scripts, what they were told, and when to stop."""

    script: dict[str, Kind] = field(default_factory=dict)
    """Every human task planned, with its script."""
    facts: HumanFacts = field(default_factory=HumanFacts)
    completed: set[str] = field(default_factory=set)
    """Tasks someone was told they completed."""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    marks: itertools.count[int] = field(default_factory=itertools.count)
    lead: Worker | None = None

    def tell(self, person: str, task_id: str, action: Action, answered: Answered, mark: str = "") -> Told:
        """Keep what a person was told."""
        event = answered.event
        told = Told(
            person=person,
            task_id=task_id,
            action=action,
            outcome=answered.outcome,
            claim=event.claim if isinstance(event, Claimed | Released) else 0,
            mark=mark,
            output=event.output if isinstance(event, Succeeded) else "",
            why=answered.why,
            tries=answered.tries,
        )
        self.facts.told.append(told)
        if isinstance(event, Succeeded):
            self.completed.add(task_id)
            self.changed.set()
        return told

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less when the people are sent home."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def reach(self, count: int, within: float) -> bool:
        """Wait until `count` tasks were completed; whether they were within `within` seconds."""
        return await reached(self.changed, lambda: len(self.completed) >= count, within)


@dataclass
class Worker:
    """One person at work: reads the inbox, claims, and does what the claimed task's script says."""

    member: Member
    hands: Hands
    floor: Floor
    rng: random.Random

    async def work(self) -> None:
        """Until sent home: take one of the three oldest waiting tasks, claim it, act on it."""
        floor = self.floor
        while not floor.stop.is_set():
            records = await self.hands.inbox() or []
            waiting = [r.id for r in records if r.state == "queued" and r.id in floor.script]
            if not waiting:
                await floor.pause(IDLE_S)
                continue
            task_id = self.rng.choice(waiting[:3])
            answered = await self.hands.claim(task_id)
            told = floor.tell(self.member.id, task_id, "claim", answered)
            if told.outcome == "won":
                await self.act(task_id, told.claim)
            else:
                await floor.pause(IDLE_S)  # someone else has it: look again in a moment

    async def act(self, task_id: str, claim: int) -> None:
        """Do what the script says with claim `claim` of the task."""
        floor = self.floor
        what = move(floor.script[task_id], claim, lead=self.member.lead)
        await floor.pause(self.rng.uniform(*THINK_S))
        if what == "abandon":
            floor.facts.abandoned.append((task_id, self.member.id, claim))
        elif what == "renew":
            answered = await self.hands.claim(task_id)
            floor.tell(self.member.id, task_id, "claim", answered)
            await self.complete(task_id)
        elif what == "release":
            answered = await self.hands.release(task_id, "chaos: a second opinion, please")
            floor.tell(self.member.id, task_id, "release", answered)
        elif what == "race" and floor.lead is not None:
            floor.facts.raced.add(task_id)
            await asyncio.gather(self.complete(task_id), floor.lead.complete(task_id))
        else:
            await self.complete(task_id)

    async def complete(self, task_id: str) -> None:
        """Complete the task with an answer nobody else gives (its comment carries a unique mark)."""
        mark = f"[{self.member.id} {next(self.floor.marks)}]"
        answer: Answer = {"approved": self.rng.random() < 0.8, "comment": f"reviewed {mark}"}
        answered = await self.hands.complete(task_id, answer)
        self.floor.tell(self.member.id, task_id, "complete", answered, mark)


@asynccontextmanager
async def hired(stage: Stage, floor: Floor) -> AsyncIterator[list[Worker]]:
    """The team as people of the review queue, each with a `work` token and their own connection."""
    client = stage.client
    workers = []
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)))
        for n, member in enumerate(TEAM):
            await PeopleStore(client.bus).put(
                Person(id=member.id, skills=[QUEUE], capacity=10, lead=member.lead)
            )
            issued = await client.create_token(
                TokenRequest(tenant=TENANT, scopes=("work",), subject=member.id), by="chaos-harness"
            )
            hands: Hands
            if member.over_http:
                hands = HttpHands(http, stage.mesh.api_url, issued.token)
            else:
                settings = stage.mesh.settings().with_(worker=member.id)
                own = await stack.enter_async_context(open_client(settings))
                caller = Caller.of(await TokenStore(own.bus).opened_by(issued.token))
                hands = DeskHands(Desk(own.bus, PeopleStore(own.bus)), caller)
            workers.append(Worker(member, hands, floor, random.Random(n)))
        floor.facts.leads = frozenset(m.id for m in TEAM if m.lead)
        floor.lead = next(w for w in workers if w.member.lead)
        yield workers


def standalone(stamp: str) -> list[tuple[TaskRequest, Kind]]:
    """The standalone human tasks, each with its script; an abandoned one's lease is short."""
    found = []
    for n in range(STANDALONE):
        kind = kind_of(n)
        human = HumanWork(lease_s=LAPSE_LEASE_S) if kind == "lapse" else HumanWork()
        request = TaskRequest(
            id=f"hw{stamp}-{n:02d}-{kind}",
            tenant=TENANT,
            role=ROLE,
            prompt=f"Review change {n} before it ships",
            human=human,
        )
        found.append((request, kind))
    return found


def review_then_test(workflow_id: str, kind: Kind, effects_file: Path) -> Workflow:
    """A person's review, then a tester step that reads the answer and records its run."""
    human = HumanWork(lease_s=LAPSE_LEASE_S) if kind == "lapse" else HumanWork()
    test_id = step_task_id(workflow_id, "test")
    steps = [
        Step(name="review", role=ROLE, prompt="Review the release notes", human=human),
        Step(
            name="test",
            role="tester",
            prompt="Test what the review said: {{ steps.review.output }}",
            needs=["review"],
            commands=[effects.command(test_id, effects_file, sleep_s=STEP_S)],
        ),
    ]
    return Workflow(id=workflow_id, tenant=TENANT, steps=steps)


@dataclass
class Faults:
    """The kills, each once its moment comes, with what was open when it landed."""

    stage: Stage
    floor: Floor
    total: int

    async def kill(self, name: str) -> None:
        """SIGKILL every process of the service, note how much human work was open, wait until it is back."""
        kills = self.stage.mesh.kill(name)
        done = len(self.floor.completed)
        self.stage.notes.append(f"{name} killed with {done} of {self.total} human tasks completed")
        if name == "orchestrator" and done >= self.total:
            self.stage.violations.append("the orchestrator was killed after every task ended: proved nothing")
        await self.stage.mesh.back(kills)

    async def guard_then_agents(self) -> None:
        """The guard while tasks are submitted, then the agents with a tester step running."""
        await self.stage.load.until(int(STANDALONE * GUARD_AT))
        await self.kill("guard")
        if not await self.stage.mesh.busy("agents", 1, within=20.0):
            self.stage.notes.append("the agents never ran a tester step when killed")
        await self.kill("agents")

    async def orchestrator(self) -> None:
        """The orchestrator at three points of the work."""
        for share in ORCHESTRATOR_AT:
            if not await self.floor.reach(int(share * self.total), within=30.0):
                self.stage.notes.append(f"{share:.0%} of the human tasks were never completed by then")
            await self.kill("orchestrator")

    async def run(self) -> None:
        """Both series of kills side by side (a kill of one may land while another service is down); a
        process that does not come back is a violation."""

        async def reported(series: Callable[[], Awaitable[None]]) -> None:
            try:
                await series()
            except MeshError as exc:
                self.stage.violations.append(f"fault: {exc}")

        await asyncio.gather(reported(self.guard_then_agents), reported(self.orchestrator))


async def _everything_done(stage: Stage, floor: Floor, within: float) -> bool:
    """Wait until every acknowledged human task was completed (someone was told so)."""
    await stage.load.done()
    acknowledged = set(stage.load.facts.tasks())
    return await floor.reach(len(acknowledged & set(floor.script)), within)


async def run_human_work(workdir: Path) -> Report:
    """human-work: 40 standalone human tasks and 6 review-then-test workflows, five people at work, the
    guard, the agents and (three times) the orchestrator SIGKILLed."""
    started = time.monotonic()
    stamp = f"{time.time_ns() // 1_000_000:x}"
    floor = Floor()
    async with AsyncExitStack() as stack:
        mesh = await stack.enter_async_context(running_mesh(workdir, PLAN.env))
        stage = await stack.enter_async_context(staged(mesh, workdir, PLAN))
        workers = await stack.enter_async_context(hired(stage, floor))
        run = Run(stage, Progress(set()))
        flows = [
            review_then_test(f"hwf{stamp}-{n}-{kind_of(n)}", kind_of(n), stage.load.effects_file)
            for n in range(WORKFLOWS)
        ]
        floor.script.update({step_task_id(w.id, "review"): kind_of(n) for n, w in enumerate(flows)})
        planned = standalone(stamp)
        floor.script.update({request.id: kind for request, kind in planned})
        total = len(floor.script)
        async with asyncio.TaskGroup() as group:
            for worker in workers:
                group.create_task(worker.work(), name=worker.member.id)
            await run.publish(flows)
            group.create_task(stage.load.steady([Planned(r) for r, _ in planned], SUBMIT_RATE))
            await Faults(stage, floor, total).run()
            faulted = time.monotonic()
            if not await _everything_done(stage, floor, DONE_WITHIN_S):
                stage.notes.append(f"the people did not complete everything within {DONE_WITHIN_S:.0f}s")
            stage.notes.append(
                f"faults over at {faulted - started:.0f}s, every human task completed "
                f"{time.monotonic() - faulted:.0f}s later"
            )
            floor.stop.set()
        await stage.load.settle(PLAN.tenants, within=PLAN.converge_s)
        floor.facts.checked_at = datetime.now(UTC)
        await run.collect()
        floor.facts.dead_letters = len(await streams.dead_letters(stage.client.bus.js))
    tasks = stage.load.facts
    tasks.kills = list(stage.mesh.kills)
    floor.facts.kinds = {i: k for i, k in floor.script.items() if i in tasks.tasks()}
    humans = check_humans(floor.facts, tasks)
    return check(
        NAME,
        tasks,
        time.monotonic() - started,
        violations=[*stage.violations, *humans.violations, *check_workflows(run.facts, tasks)],
        notes=[
            *stage.notes,
            f"scripts: {_kinds(list(floor.facts.kinds.values()))}",
            humans.counts.line(),
            *humans.notes,
        ],
    )


def _kinds(items: Sequence[Kind]) -> str:
    return ", ".join(f"{items.count(k)} {k}" for k in dict.fromkeys(items))
