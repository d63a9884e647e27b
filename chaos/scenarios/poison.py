"""Poison on the request subject: garbage, wrong types, an unknown field, 5,000 levels of nesting, an
oversized request, a body whose tenant is not the subject's, a credential in a request with a wrong type
(its dead letter must not keep it). Each must end in the DLQ with a reason (an
oversized one may instead be rejected by the policy, with a record saying so); a request whose id can be
read must leave a terminal record; no service may crash; the guard must drain and keep serving."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from chaos import effects
from chaos.drill import Plan, Stage, drill
from chaos.facts import Submission
from chaos.invariants import Report
from chaos.load import PLANTED_KEY, converge
from chaos.streams import dead_letters
from maestro import topics
from proto.v1 import new_task_id

DEPTH = 5_000
DEEP_COPIES = 100
"""Enough deeply nested requests to wedge the guard if each stayed unacknowledged."""
OVERSIZED_BYTES = 800_000
"""Over the default max_request_bytes (786,432), under NATS's 1 MiB payload limit."""


@dataclass(frozen=True)
class Poison:
    """One bad message: its name, the tenant of the subject it is sent on, its bytes."""

    name: str
    tenant: str
    data: bytes
    task_id: str | None = None
    """The id in its body, if it has one."""
    readable: bool = True
    """A plain JSON reader finds the id: then a record must say why the request was refused."""
    msg_id: str = field(default_factory=lambda: f"poison-{new_task_id()}")
    http_status: tuple[int, ...] = (400,)
    """What POST /v1/tasks must answer for the same body (empty: not sent over HTTP)."""


def _json(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def poisons(effects_file: Path) -> list[Poison]:
    """A fresh set of poison messages (new ids each time)."""
    ids = {name: new_task_id() for name in ("types", "field", "big", "tenant", "utf8", "secret")}
    deep = [new_task_id() for _ in range(DEEP_COPIES)]
    nested = "[" * DEPTH + "]" * DEPTH
    found = [
        Poison("garbage", "acme", b"\x00\xff\xfe{{{ not json"),
        Poison("empty", "acme", b""),
        Poison("json-array", "acme", b"[1, 2, 3]"),
        Poison(
            "wrong-types",
            "acme",
            _json(id=ids["types"], tenant="acme", role="tester", prompt=12345, commands="echo"),
            ids["types"],
        ),
        Poison(
            "secret-and-wrong-type",
            "acme",
            _json(
                id=ids["secret"],
                tenant="acme",
                role="tester",
                prompt=f"Deploy with {PLANTED_KEY}",
                commands=5,
            ),
            ids["secret"],
        ),
        Poison(
            "unknown-field",
            "acme",
            _json(id=ids["field"], tenant="acme", role="tester", prompt="Run", comands=["echo"]),
            ids["field"],
        ),
        Poison(
            "bad-utf8",
            "acme",
            b'{"id": "'
            + ids["utf8"].encode()
            + b'", "tenant": "acme", "role": "tester", "prompt": "\xff\xfe"}',
        ),
        Poison(
            "oversized",
            "acme",
            _json(id=ids["big"], tenant="acme", role="tester", prompt="a" * OVERSIZED_BYTES),
            ids["big"],
            http_status=(413,),
        ),
        Poison(
            "wrong-tenant",
            "acme",
            _json(
                id=ids["tenant"],
                tenant="globex",
                role="tester",
                prompt="Run the check",
                commands=[effects.command(ids["tenant"], effects_file)],
            ),
            ids["tenant"],
            http_status=(),
        ),
    ]
    for n, task_id in enumerate(deep):
        body = (
            f'{{"id": "{task_id}", "tenant": "acme", "role": "tester", "prompt": "x", "context": {nested}}}'
        )
        # One is sent over HTTP as well; a hundred of the same answer would prove nothing more.
        http = (400,) if n == 0 else ()
        found.append(Poison("deep-nesting", "acme", body.encode(), task_id, readable=False, http_status=http))
    return found


@dataclass
class PoisonRun:
    """The poison sent in one drill, and the service pids before it, to check against afterwards."""

    sent: list[Poison] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)

    async def publish(self, stage: Stage) -> None:
        """Send every poison message on the request subject, and its body to the HTTP API."""
        self.pids = {m.name: m.pid for m in stage.mesh.members()}
        js = stage.client.bus.js
        for poison in poisons(stage.load.effects_file):
            await js.publish(
                topics.REQUESTS.subject(poison.tenant),
                poison.data,
                headers={topics.HEADER_MSG_ID: poison.msg_id},
            )
            self.sent.append(poison)
            if poison.task_id is not None and poison.readable:
                effect = poison.name == "wrong-tenant"
                stage.load.facts.submissions.append(
                    Submission(poison.task_id, poison.tenant, "tester", effect=effect, must_run=False)
                )
        await _post(stage, self.sent)

    async def verify(self, stage: Stage) -> None:
        """Every poison message in the DLQ, and no service restarted (a consumer that never drains is a
        violation of every scenario)."""
        letters = await dead_letters(stage.client.bus.js)
        by_msg_id = {
            letter.headers.get(topics.HEADER_MSG_ID): letter for letter in letters if letter.reason.strip()
        }
        missing: dict[str, int] = {}
        for poison in self.sent:
            if poison.msg_id in by_msg_id:
                continue
            record = stage.load.facts.records.get(poison.task_id or "")
            if poison.name == "oversized" and record and record.state == "rejected" and record.reason:
                continue  # denied by the policy's size limit, with the reason in its record
            missing[poison.name] = missing.get(poison.name, 0) + 1
        for name, count in sorted(missing.items()):
            stage.violations.append(f"{count} {name} poison messages are not in the DLQ with a reason")
        deep = [p.task_id for p in self.sent if p.name == "deep-nesting" and p.task_id]
        found = await converge(stage.client, deep, within=30)
        if len(found) < len(deep):
            # Their id is read off the top level (codec.top_level_strings): each must end rejected.
            missing_deep = len(deep) - len(found)
            stage.violations.append(f"{missing_deep} of {len(deep)} deep-nesting requests left no record")
        after = {m.name: m.pid for m in stage.mesh.members()}
        crashed = sorted(n for n, pid in self.pids.items() if after.get(n) != pid)
        if crashed:
            stage.violations.append(f"restarted during the poison (crashed?): {', '.join(crashed)}")


async def _post(stage: Stage, sent: list[Poison]) -> None:
    wrong: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for poison in sent:
            if not poison.http_status:
                continue
            body = poison.data.replace(b'"id": "', b'"id": "h', 1)  # its own id: not the NATS copy
            try:
                async with http.post(
                    f"{stage.mesh.api_url}/v1/tasks", data=body, headers=stage.mesh.api_headers()
                ) as resp:
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                wrong.append(f"{poison.name}: {exc!r}")
                continue
            if status not in poison.http_status:
                wrong.append(f"{poison.name}: {status}")
            if status == 202 and poison.task_id is not None:
                # Accepted: it is a task like any other now, and must end like one.
                stage.load.facts.submissions.append(Submission("h" + poison.task_id, poison.tenant, "tester"))
    if wrong:
        stage.violations.append(f"the HTTP API answered poison wrongly (expected 4xx): {', '.join(wrong)}")


async def run_poison(workdir: Path) -> Report:
    """poison: 100 tester tasks at 25/s, the poison sent after 20% of them."""
    run = PoisonRun()
    return await drill("poison", workdir, Plan(tasks=100, fault_at=0.2), run.publish, after=run.verify)
