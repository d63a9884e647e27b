"""A policy bundle pushed mid-load, again and again: every decision names exactly one bundle (its version
and that version's hash) and the task ends as that bundle says. Bundles alternate between one that
allows (the defaults) and one that denies every request (a 64-byte size limit)."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from chaos.drill import Plan, Stage, drill
from chaos.invariants import Report
from chaos.mesh import MeshError, maestro_command
from proto.v1 import AwaitingApproval, Queued, Rejected

PUSHES = 6
_EVERY = 10
"""Submissions answered between two pushes (a push itself takes about a second)."""
_PUSHED = re.compile(r"pushed: version (\S+), sha256 ([0-9a-f]{64})")
_IN_FORCE_S = 15.0


def bundle(version: str) -> str:
    """A bundle's YAML: the defaults, or (a `deny` version) a size limit no request fits."""
    text = f"version: {version}\n"
    return text + "default:\n  max_request_bytes: 64\n" if "deny" in version else text


@dataclass
class Pushes:
    """The bundles pushed in one drill: version -> hash."""

    hashes: dict[str, str] = field(default_factory=dict)

    async def push(self, stage: Stage, version: str) -> None:
        """`maestro policy push` a bundle, then wait until the guard says it is in force."""
        path = stage.mesh.root / f"{version}.yaml"
        await asyncio.to_thread(path.write_text, bundle(version))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
        env["MAESTRO_NATS_URL"] = stage.mesh.nats_url
        proc = await asyncio.create_subprocess_exec(
            *maestro_command(),
            "policy",
            "push",
            str(path),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        found = _PUSHED.search(out.decode(errors="replace"))
        if proc.returncode != 0 or found is None:
            raise MeshError(f"maestro policy push {version} failed: {out.decode(errors='replace').strip()}")
        self.hashes[found.group(1)] = found.group(2)
        await _in_force(stage.mesh.urls["guard"], found.group(1), found.group(2))

    async def first(self, stage: Stage) -> None:
        """Before the load: an allowing bundle, so that every decision is by a pushed one."""
        await self.push(stage, "chaos-allow-0")

    async def alternate(self, stage: Stage) -> None:
        """Push deny and allow bundles in turn, some submissions apart."""
        for n in range(1, PUSHES + 1):
            await stage.load.until(stage.load.answered + _EVERY)
            await self.push(stage, f"chaos-{'deny' if n % 2 else 'allow'}-{n}")

    async def verify(self, stage: Stage) -> None:
        """One verdict per task, by a pushed bundle's version and hash, and the task ended as it said."""
        facts = stage.load.facts
        counts: dict[str, int] = {}
        several, unknown, contrary = [], [], []
        for task_id, submission in facts.tasks().items():
            verdicts = [
                e.event.decision
                for e in facts.events.get(task_id, ())
                if isinstance(e.event, Queued | Rejected | AwaitingApproval)
            ]
            if len(verdicts) != 1:
                several.append(f"{task_id} ({len(verdicts)})")
                continue
            decision = verdicts[0]
            counts[decision.policy_version] = counts.get(decision.policy_version, 0) + 1
            if self.hashes.get(decision.policy_version) != decision.policy_hash:
                unknown.append(f"{task_id} ({decision.policy_version} {decision.policy_hash[:12]})")
                continue
            record = facts.records.get(task_id)
            state = record.state if record else "missing"
            denied = "deny" in decision.policy_version or not submission.must_run
            if (state == "rejected") != denied:
                contrary.append(f"{task_id} ({decision.policy_version}: {state})")
        for what, found in (
            ("tasks without exactly one verdict", several),
            ("decisions by no pushed bundle (version and hash disagree)", unknown),
            ("tasks that did not end as their bundle said", contrary),
        ):
            if found:
                stage.violations.append(f"{len(found)} {what}: {', '.join(sorted(found)[:4])}")
        judged = ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))
        stage.notes.append(f"decisions by bundle: {judged}")
        if not any("deny" in v for v in counts):
            stage.violations.append("no task was judged by a denying bundle: the pushes came too late")


async def _in_force(guard_url: str, version: str, sha: str) -> None:
    wanted = f'hash="{sha}",version="{version}"'
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _IN_FORCE_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            try:
                async with http.get(f"{guard_url}/metrics") as resp:
                    if wanted in await resp.text():
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if loop.time() > deadline:
                raise MeshError(f"the guard did not take bundle {version} within {_IN_FORCE_S:.0f}s")
            await asyncio.sleep(0.05)


async def run_push(workdir: Path) -> Report:
    """policy-push: 200 tester tasks at 25/s; six bundles pushed, 10 submissions apart."""
    pushes = Pushes()
    plan = Plan(fault_at=0.1, converge_s=30.0)
    return await drill(
        "policy-push", workdir, plan, pushes.alternate, before=pushes.first, after=pushes.verify
    )
