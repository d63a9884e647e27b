"""The smoke run: one task per role, one request carrying a credential, one workflow whose planner fans out
into subtasks and the agents' chain on the sample project, then a table of how each ended."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from maestro import codec
from maestro.client import Client
from maestro.errors import NotFound
from proto.v1 import ROLES, ContextFile, Role, TaskRecord, TaskRequest
from proto.v1.work import Review
from proto.v1.workflows import Need, Step, Workflow, step_task_id

SAMPLE_PROJECT = Path(__file__).resolve().parents[1] / "examples" / "sample-project"
"""A tiny Python package with a pytest suite that the agents' chain works on."""
_SKIPPED_PARTS = frozenset({"__pycache__", ".pytest_cache"})

# Built from parts so that this file itself carries no credential-shaped string.
_PLANTED_KEY = "AKIA" + "Z7QW3RT5YU2IOP4L"

_PROMPTS: dict[Role, str] = {
    "planner": "Plan a CLI that counts words",
    "scaffolder": "Scaffold a Python package named wordcount",
    "implementer": "Implement wordcount.count(text) returning the number of words",
    "tester": "Run the test command",
    "reviewer": "Review wordcount/__init__.py",
    "doc-writer": "Document the wordcount CLI",
}


@dataclass(frozen=True)
class Case:
    """One smoke task and the state it must end in."""

    name: str
    request: TaskRequest
    expect: str


def cases(tenant: str = "smoke") -> list[Case]:
    """The smoke tasks: every role must succeed; the request with a key must be rejected."""
    source = ContextFile(
        path="wordcount/__init__.py", content="def count(text):\n    return len(text.split())\n"
    )
    found = [
        Case(
            role,
            TaskRequest(
                tenant=tenant,
                role=role,
                prompt=_PROMPTS[role],
                context=[source] if role in ("reviewer", "tester", "doc-writer") else [],
                commands=["python3 -c 'print(len(\"a b c\".split()))'"] if role == "tester" else [],
                labels={"suite": "smoke"},
            ),
            "succeeded",
        )
        for role in ROLES
    ]
    leaked = TaskRequest(
        tenant=tenant,
        role="implementer",
        prompt=f"Deploy with aws key {_PLANTED_KEY} please",
        labels={"suite": "smoke"},
    )
    found.append(Case("credential", leaked, "rejected"))
    return found


async def _finish(client: Client, case: Case, timeout: float) -> tuple[Case, TaskRecord | None, float]:
    started = time.monotonic()
    await client.submit(case.request)
    try:
        record = await client.wait(case.request.id, timeout=timeout)
    except TimeoutError:
        return case, None, time.monotonic() - started
    return case, record, time.monotonic() - started


def fan_out(tenant: str = "smoke") -> Workflow:
    """A planner that expands its plan into subtasks (each judged by the guard), then a review of them."""
    return Workflow(
        tenant=tenant,
        labels={"suite": "smoke"},
        steps=[
            Step(name="plan", role="planner", prompt=_PROMPTS["planner"], expand=True),
            Step(name="review", role="reviewer", prompt="Review what the plan built", needs=["plan"]),
        ],
    )


def project_files(root: Path = SAMPLE_PROJECT) -> list[ContextFile]:
    """The files of a project folder as context files (caches left out), in path order."""
    return [
        ContextFile(path=path.relative_to(root).as_posix(), content=path.read_text(encoding="utf-8"))
        for path in sorted(root.rglob("*"))
        if path.is_file() and not _SKIPPED_PARTS & set(path.relative_to(root).parts)
    ]


CHAIN = ("plan", "implement", "test", "review", "docs")
"""The steps of the agents' chain, in order."""


def agent_chain(tenant: str = "smoke", files: list[ContextFile] | None = None) -> Workflow:
    """Planner, implementer, tester (pytest on the implementer's change), reviewer, doc-writer on the sample
    project: each step hands the project's files and the changes so far to the next."""
    context = project_files() if files is None else files
    prompts: list[tuple[str, Role, str, list[str]]] = [
        ("plan", "planner", "Add word counts to textstats: count each word of a text, with tests", []),
        (
            "implement",
            "implementer",
            "Add word counts to textstats: count each word of a text, with tests",
            [],
        ),
        ("test", "tester", "Run the test suite on the change", ["python -m pytest -q"]),
        ("review", "reviewer", "Review the word counts change", []),
        ("docs", "doc-writer", "Word counts\n\nDocument the word counts in the README", []),
    ]
    steps = []
    for n, (name, role, prompt, commands) in enumerate(prompts):
        needs: list[str | Need] = [prompts[n - 1][0]] if n else []
        steps.append(
            Step(name=name, role=role, prompt=prompt, needs=needs, context=context, commands=commands)
        )
    return Workflow(tenant=tenant, labels={"suite": "smoke"}, steps=steps)


def chain_summary(records: dict[str, TaskRecord]) -> str:
    """What the chain's tester and reviewer reported: the test counts and the review's verdict."""
    tested = records.get("test")
    counts = next(
        (line for line in (tested.output if tested else "").splitlines() if line.startswith("tests: ")), ""
    )
    review = records.get("review")
    verdict = "no review"
    if review is not None and "```json\n" in review.output:
        document = review.output.split("```json\n", 1)[1].split("```", 1)[0]
        found = codec.decode(Review, document)
        verdict = f"{found.verdict}, {len(found.findings)} findings"
    return f"{counts.removeprefix('tests: ') or 'no tests'}; review: {verdict}"


async def _finish_chain(client: Client, workflow: Workflow, timeout: float) -> tuple[str, float]:
    state, seconds = await _finish_workflow(client, workflow, timeout)
    records = {}
    for name in CHAIN:
        try:
            records[name] = await client.get(step_task_id(workflow.id, name))
        except NotFound:  # a step that never ran: the summary says what is missing
            continue
    return f"{state}; {chain_summary(records)}", seconds


async def _finish_workflow(client: Client, workflow: Workflow, timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    await client.run_workflow(workflow)
    try:
        record = await client.wait_workflow(workflow.id, timeout=timeout)
    except TimeoutError:
        return "no answer", time.monotonic() - started
    ran = sum(s.state == "succeeded" for s in record.steps)
    return f"{record.state} ({ran} of {len(record.steps)} steps)", time.monotonic() - started


async def run(client: Client, *, timeout: float = 120.0) -> int:
    """Submit every case, wait for all, print a table; 0 only when every case ended as expected."""
    flow = fan_out()
    finished = asyncio.gather(*(_finish(client, case, timeout) for case in cases()))
    results, (flow_state, flow_seconds), (chain_state, chain_seconds) = await asyncio.gather(
        finished, _finish_workflow(client, flow, timeout), _finish_chain(client, agent_chain(), timeout)
    )
    print(f"{'task':<14}{'role':<13}{'state':<12}{'expected':<11}{'duration':>9}")
    ok = True
    for case, record, seconds in results:
        state = record.state if record else "no answer"
        good = state == case.expect
        ok &= good
        mark = "" if good else "   <-- unexpected"
        print(f"{case.name:<14}{case.request.role:<13}{state:<12}{case.expect:<11}{seconds:>8.2f}s{mark}")
        if record and not good and (record.reason or record.error):
            print(f"{'':<14}{record.reason or record.error}")
    good = flow_state.startswith("succeeded")
    ok &= good
    mark = "" if good else "   <-- unexpected"
    print(f"{'workflow':<14}{'planner+':<13}{flow_state:<24}{flow_seconds:>8.2f}s{mark}")
    good = chain_state.startswith("succeeded") and " passed" in chain_state and ": approve" in chain_state
    ok &= good
    mark = "" if good else "   <-- unexpected"
    print(f"{'workflow':<14}{'agent chain':<13}{chain_state:<24}{chain_seconds:>8.2f}s{mark}")
    print("smoke passed" if ok else "smoke FAILED")
    return 0 if ok else 1
