"""One id is one task: the same id inside and after the duplicate window, across a nats-server restart,
with other content, and from two tenants (one after the other, and at once). Each runs exactly once; a
conflicting submission is refused with a reason (a DLQ entry on NATS, 409 over HTTP), never merged or
dropped in silence."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import msgspec
from msgspec import structs

from chaos.drill import Plan, Stage, judge, staged
from chaos.invariants import Report
from chaos.load import Planned, converge, drained
from chaos.mesh import running_mesh
from chaos.streams import dead_letters
from maestro import codec, topics
from proto.v1 import TaskRequest

WINDOW_S = 3.0
"""The duplicate window of this scenario's mesh (MAESTRO_DUPLICATE_WINDOW_S)."""
_END_S = 30.0


@dataclass
class Identity:
    """The cases of one identity drill and what each must come to."""

    stage: Stage
    runs_once: dict[str, str] = field(default_factory=dict)
    """Case -> task id that must have run exactly once."""
    refused: list[tuple[str, TaskRequest]] = field(default_factory=list)
    """Case -> a submission that must be refused with a reason."""
    http: list[tuple[str, TaskRequest, tuple[int, ...]]] = field(default_factory=list)
    raced: list[TaskRequest] = field(default_factory=list)
    """The two submissions of one id by two tenants at once: exactly one must be refused."""

    async def _submit(self, planned: Planned) -> None:
        # Not acknowledged: refused by the SDK (what a conflict should be) or never answered (counted in the
        # facts); either way, what each case must come to is checked in verify().
        await self.stage.load.submit(planned)

    async def _ended(self, task_id: str) -> None:
        await converge(self.stage.client, [task_id], within=_END_S)

    async def _idle(self) -> None:
        if left := await drained(self.stage.client):
            self.stage.notes.append(
                f"the pipeline did not drain within 30s ({left}); later checks may be early"
            )

    def _other(self, planned: Planned, **changes: str) -> Planned:
        return Planned(structs.replace(planned.request, **changes), effect=True, must_run=False)

    async def _window_passes(self) -> None:
        await asyncio.sleep(WINDOW_S + 1.0)  # the window is time itself: nothing else to wait on

    async def window(self) -> None:
        """The same request twice inside the window and once after it; other content inside and after."""
        first = self.stage.load.tester("acme")
        await self._submit(first)
        await self._submit(first)
        inside = self._other(first, prompt="Other content, inside the window")
        await self._submit(inside)
        await self._ended(first.request.id)
        await self._window_passes()
        await self._submit(first)
        await self._idle()
        await self._window_passes()
        after = self._other(first, prompt="Other content, after the window")
        await self._submit(after)
        await self._idle()
        self.runs_once["same id inside and after the duplicate window"] = first.request.id
        self.refused.append(("same id, other content, inside the window", inside.request))
        self.refused.append(("same id, other content, after the window", after.request))
        self.http.append(("same id, same content (HTTP)", first.request, (200, 202)))
        self.http.append(("same id, other content (HTTP)", after.request, (409,)))

    async def restart(self) -> None:
        """The same request again after nats-server was killed and came back."""
        planned = self.stage.load.tester("acme")
        await self._submit(planned)
        await self._ended(planned.request.id)
        note = await self.stage.mesh.nats_back(self.stage.mesh.kill("nats-server"))
        if note is not None:
            self.stage.violations.append(f"{note} (issue 7 finding 12)")
        await self._submit(planned)
        await self._idle()
        self.runs_once["same id across a nats-server restart"] = planned.request.id

    async def tenants(self) -> None:
        """The same id from another tenant once the first ended: inside the window and after it."""
        planned = self.stage.load.tester("acme")
        await self._submit(planned)
        await self._ended(planned.request.id)
        inside = self._other(planned, tenant="globex")
        await self._submit(inside)
        await self._window_passes()
        after = self._other(planned, tenant="globex", prompt="Another tenant, after the window")
        await self._submit(after)
        await self._idle()
        self.runs_once["same id from a second tenant"] = planned.request.id
        self.refused.append(("same id from a second tenant, inside the window", inside.request))
        self.refused.append(("same id from a second tenant, after the window", after.request))
        self.http.append(("same id from a second tenant (HTTP)", inside.request, (409,)))

    async def race(self) -> None:
        """The same id from two tenants at the same moment."""
        planned = self.stage.load.tester("acme")
        other = self._other(planned, tenant="globex")
        await asyncio.gather(self._submit(planned), self._submit(other))
        self.raced = [planned.request, other.request]
        await self._ended(planned.request.id)
        await self._idle()
        self.runs_once["same id from two tenants at once"] = planned.request.id

    async def verify(self) -> None:
        """Each case ran once; each conflict was refused with a reason; no record was merged."""
        facts = self.stage.load.facts
        runs: dict[str, int] = {}
        for execution in facts.executions:
            runs[execution.task_id] = runs.get(execution.task_id, 0) + 1
        for case, task_id in self.runs_once.items():
            if runs.get(task_id, 0) != 1:
                self.stage.violations.append(f"{case}: ran {runs.get(task_id, 0)} times, not once")
        letters = await dead_letters(self.stage.client.bus.js)
        # Refused loudly: a DLQ entry with a reason, or an error from submit() (the SDK said no).
        loud = {(s.task_id, s.tenant, s.role) for s, _ in facts.refusals}

        def refused(request: TaskRequest) -> bool:
            subject = topics.REQUESTS.subject(request.tenant)
            return (request.id, request.tenant, request.role) in loud or any(
                letter.subject == subject and _carries(letter.data, request) and letter.reason.strip()
                for letter in letters
            )

        for case, request in self.refused:
            if not refused(request):
                self.stage.violations.append(
                    f"{case}: refused in silence (submit() raised nothing, no DLQ entry has a reason)"
                )
        refusals = [request for request in self.raced if refused(request)]
        if len(refusals) != 1:
            self.stage.violations.append(
                f"same id from two tenants at once: {len(refusals)} of the two submissions were refused "
                "with a reason (expected exactly one)"
            )
        second = self.runs_once["same id from a second tenant"]
        record = facts.records.get(second)
        if record is not None and record.tenant != "acme":
            self.stage.violations.append(f"same id from a second tenant: the record now says {record.tenant}")
        await self._post_all()

    async def _post_all(self) -> None:
        wrong = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for case, request, expected in self.http:
                async with http.post(
                    f"{self.stage.mesh.api_url}/v1/tasks",
                    data=codec.encode(request),
                    headers=self.stage.mesh.api_headers(),
                ) as resp:
                    if resp.status not in expected:
                        wrong.append(f"{case}: {resp.status}, expected {' or '.join(map(str, expected))}")
        self.stage.violations += wrong


def _carries(data: bytes, request: TaskRequest) -> bool:
    # A dead letter keeps the request's bytes (secrets masked): the same id, tenant and prompt.
    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return isinstance(body, dict) and all(
        body.get(key) == getattr(request, key) for key in ("id", "tenant", "prompt")
    )


async def run_identity(workdir: Path) -> Report:
    """identity: a handful of tester tasks, each id submitted again in one of the ways above."""
    started = time.monotonic()
    plan = Plan(env={"MAESTRO_DUPLICATE_WINDOW_S": f"{WINDOW_S:g}"})
    async with running_mesh(workdir, plan.env) as mesh, staged(mesh, workdir, plan) as stage:
        identity = Identity(stage)
        await identity.window()
        await identity.restart()
        await identity.tenants()
        await identity.race()
        await stage.load.settle(plan.tenants, within=_END_S)
        await identity.verify()
    return judge("identity", stage, time.monotonic() - started)
