"""People as workers, end to end on a real mesh through the `maestro` command: a workflow whose security
review is a person's step, claims gated by skill, leases that lapse, and completions of which one wins."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from maestro import codec
from maestro.access.grants import Caller, mint
from maestro.access.token_store import TokenStore
from maestro.client import Client
from maestro.desk.desk import LEASE_BY, Desk, DeskError
from maestro.desk.people import PeopleStore
from proto.v1 import Accepted, Claimed, HandedOff, Released, Succeeded, TaskRequest
from proto.v1.humans import AnswerField, AnswerForm, HandOff, HumanWork, Person
from proto.v1.workflows import Step, Workflow, step_task_id
from tests.e2e.conftest import in_state
from tests.maestro.command import maestro

WORKFLOW = {
    "id": "wf-release",
    "tenant": "acme",
    "steps": [
        {"name": "plan", "role": "planner", "prompt": "Plan a CLI that counts words"},
        {
            "name": "build",
            "role": "implementer",
            "prompt": "Implement: {{ steps.plan.output }}",
            "needs": ["plan"],
        },
        {
            "name": "security",
            "role": "human:security",
            "prompt": "Review the change for secrets and unsafe calls: {{ steps.build.state }}",
            "needs": ["build"],
            "human": {
                "form": {
                    "fields": [
                        {"name": "approved", "kind": "approval"},
                        {"name": "risk", "kind": "choice", "choices": ["low", "medium", "high"]},
                        {"name": "notes", "kind": "text", "required": False},
                    ]
                }
            },
        },
        {
            "name": "test",
            "role": "tester",
            "prompt": "Test what security said: {{ steps.security.output }}",
            "needs": ["security"],
        },
        {"name": "docs", "role": "doc-writer", "prompt": "Document the CLI", "needs": ["test"]},
    ],
}


async def _person(client: Client, tmp_path: Path, subject: str, **person: object) -> Path:
    """A person with a `work` token of tenant acme, stored in a file the CLI reads (MAESTRO_TOKEN_FILE)."""
    minted = mint(tenant="acme", scopes=["work"], subject=subject, created_by="test", now=datetime.now(UTC))
    await TokenStore(client.bus).add(minted)
    path = tmp_path / f"{subject}.token"
    path.write_text(minted.token + "\n")
    listed = [f"--skill={s}" for s in person.get("skills", [])]  # type: ignore[attr-defined]
    added = await _cli(client, "people", "add", subject, *listed)
    assert added.returncode == 0, added.stderr
    return path


async def _cli(client: Client, *args: str, token: Path | None = None) -> CompletedProcess[str]:
    """`maestro ARGS` as the person whose token is in `token`, while the mesh goes on in this process."""
    extra = {"MAESTRO_TOKEN_FILE": str(token)} if token else {}
    url = client.bus.settings.nats_url
    return await asyncio.to_thread(maestro, *args, nats_url=url, **extra)


async def test_a_person_with_the_skill_does_the_security_review_and_the_tester_reads_the_answer(
    mesh: Client, tmp_path: Path
) -> None:
    alice = await _person(mesh, tmp_path, "alice@acme", skills=["security"])
    bob = await _person(mesh, tmp_path, "bob@acme", skills=["ops"])
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW))
    ran = await _cli(mesh, "workflow", "run", str(tmp_path / "wf.json"))
    assert ran.returncode == 0, ran.stderr

    review = step_task_id("wf-release", "security")
    queued = await in_state(mesh, review, "queued", within=60)
    assert queued.role == "human:security" and queued.reservation_id == ""  # a person holds no budget
    listed = await _cli(mesh, "ls", "--role", "human:security")
    assert [row.split()[0] for row in listed.stdout.splitlines()[1:]] == [review], listed.stderr

    # Bob lacks the skill: the task is not in his inbox and he cannot take it.
    assert (await _cli(mesh, "inbox", token=bob)).stdout.splitlines()[1:] == []
    refused = await _cli(mesh, "claim", review, token=bob)
    assert refused.returncode == 1
    assert "bob@acme does not serve the security queue" in refused.stderr

    inbox = (await _cli(mesh, "inbox", "--queue", "security", token=alice)).stdout.splitlines()
    assert len(inbox) == 2 and inbox[1].split()[:4] == [review, "acme", "security", "waiting"]
    claimed = await _cli(mesh, "claim", review, token=alice)
    assert claimed.returncode == 0, claimed.stderr
    assert f"claimed {review} (by alice@acme)" in claimed.stdout
    assert "Review the change for secrets and unsafe calls: succeeded" in claimed.stdout
    assert "risk (choice: one of low, medium, high)" in claimed.stdout
    running = await in_state(mesh, review, "running")
    assert running.worker == "alice@acme" and running.lease_until is not None

    wrong = await _cli(
        mesh, "complete", review, "--answer", "approved=yes", "--answer", "risk=none", token=alice
    )
    assert wrong.returncode == 1 and "'risk' expects one of 'low', 'medium', 'high'" in wrong.stderr
    done = await _cli(
        mesh,
        "complete",
        review,
        "--answer",
        "approved=yes",
        "--answer",
        "risk=low",
        "--answer",
        "notes=no secrets, no shell=True",
        token=alice,
    )
    assert done.returncode == 0, done.stderr

    record = await mesh.wait_workflow("wf-release", timeout=90)
    assert record.state == "succeeded", record
    security = await mesh.get(review)
    answer = json.loads(security.output)
    assert answer == {"approved": True, "risk": "low", "notes": "no secrets, no shell=True"}
    assert security.worker == "alice@acme" and security.cost_micro_usd == 0
    assert security.started_at is not None and security.finished_at is not None
    # The answer is the step's output: the tester's prompt holds it whole, and its context has it too.
    test_id = step_task_id("wf-release", "test")
    (accepted,) = [e for e in await mesh.events(test_id) if isinstance(e, Accepted)]
    assert accepted.prompt_chars == len("Test what security said: ") + len(security.output)
    assert accepted.context_files == 1
    kinds = [type(e).__name__ for e in await mesh.events(review)]
    assert kinds[-2:] == ["Claimed", "Succeeded"]


def _review(task_id: str, lease_s: float = 1800.0) -> TaskRequest:
    form = AnswerForm(fields=[AnswerField(name="approved", kind="approval")])
    return TaskRequest(
        id=task_id,
        tenant="acme",
        role="human:security",
        prompt="Sign off the deployment",
        human=HumanWork(form=form, lease_s=lease_s),
    )


async def _caller(mesh: Client, subject: str, *, lead: bool = False) -> Caller:
    await PeopleStore(mesh.bus).put(Person(id=subject, skills=["security"], capacity=5, lead=lead))
    return Caller(subject, "acme", frozenset({"work"}))


async def test_a_lease_that_runs_out_returns_the_task_to_its_queue_once(mesh: Client) -> None:
    desk = Desk(mesh.bus, PeopleStore(mesh.bus))
    carol = await _caller(mesh, "carol@acme")
    await mesh.submit(_review("lease-1", lease_s=5))
    await in_state(mesh, "lease-1", "queued")
    claimed = await desk.claim(carol, "lease-1")
    assert claimed.claim == 1
    assert (await in_state(mesh, "lease-1", "running")).worker == "carol@acme"
    # Nobody renews or completes it: the durable timer the claim armed gives it back.
    back = await in_state(mesh, "lease-1", "queued", within=30)
    assert back.worker == "" and back.lease_until is None and back.claims == 1
    released = [e for e in await mesh.events("lease-1") if isinstance(e, Released)]
    assert [(r.by, r.claim) for r in released] == [(LEASE_BY, 1)]
    with pytest.raises(DeskError, match="not claimed"):
        await desk.complete(carol, "lease-1", {"approved": True})
    # Claimed again, by anyone with the skill: a new claim, whose lease the old timer cannot end.
    dave = await _caller(mesh, "dave@acme")
    again = await desk.claim(dave, "lease-1")
    assert again.claim == 2
    await desk.complete(dave, "lease-1", {"approved": False})
    assert (await in_state(mesh, "lease-1", "succeeded")).worker == "dave@acme"


async def test_of_two_people_completing_at_once_exactly_one_wins(mesh: Client) -> None:
    desk = Desk(mesh.bus, PeopleStore(mesh.bus))
    erin = await _caller(mesh, "erin@acme")
    lead = await _caller(mesh, "lead@acme", lead=True)
    for n in range(5):
        task_id = f"race-{n}"
        await mesh.submit(_review(task_id))
        await in_state(mesh, task_id, "queued")
        await desk.claim(erin, task_id)
        # The claimant and a lead answer at the same moment, differently.
        outcomes = await asyncio.gather(
            desk.complete(erin, task_id, {"approved": True}),
            desk.complete(lead, task_id, {"approved": False}),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, Succeeded)]
        lost = [o for o in outcomes if isinstance(o, DeskError)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].status == 409 and "has ended" in str(lost[0])
        record = await in_state(mesh, task_id, "succeeded")
        assert (record.worker, record.output) == (won[0].worker, won[0].output)
        ends = [e for e in await mesh.events(task_id) if isinstance(e, Succeeded)]
        assert len(ends) == 1


async def test_two_claims_at_once_one_wins_and_a_retried_completion_changes_nothing(mesh: Client) -> None:
    desk = Desk(mesh.bus, PeopleStore(mesh.bus))
    frank, gina = await _caller(mesh, "frank@acme"), await _caller(mesh, "gina@acme")
    await mesh.submit(_review("both-1"))
    await in_state(mesh, "both-1", "queued")
    outcomes = await asyncio.gather(
        desk.claim(frank, "both-1"), desk.claim(gina, "both-1"), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, Claimed)]
    assert len(winners) == 1 and isinstance(outcomes[1 - outcomes.index(winners[0])], DeskError)
    holder = frank if winners[0].by == "frank@acme" else gina
    first = await desk.complete(holder, "both-1", {"approved": True})
    again = await desk.complete(holder, "both-1", {"approved": True})  # a retry after a lost answer
    assert again == first
    assert len([e for e in await mesh.events("both-1") if isinstance(e, Succeeded)]) == 1


async def test_who_is_not_the_claimant_nor_a_lead_cannot_complete_or_release(mesh: Client) -> None:
    desk = Desk(mesh.bus, PeopleStore(mesh.bus))
    holder, other = await _caller(mesh, "hank@acme"), await _caller(mesh, "ivy@acme")
    other_tenant = Caller("hank@acme", "globex", frozenset({"work"}))
    await mesh.submit(_review("mine-1"))
    await in_state(mesh, "mine-1", "queued")
    await desk.claim(holder, "mine-1")
    await in_state(mesh, "mine-1", "running")
    for attempt in (desk.complete(other, "mine-1", {"approved": True}), desk.release(other, "mine-1")):
        with pytest.raises(DeskError, match="only they, or a lead of security") as refused:
            await attempt
        assert refused.value.status == 403
    with pytest.raises(DeskError, match="no task mine-1") as hidden:
        await desk.claim(other_tenant, "mine-1")
    assert hidden.value.status == 404
    released = await desk.release(holder, "mine-1", "need a second opinion")
    assert released.reason == "need a second opinion"
    assert (await in_state(mesh, "mine-1", "queued")).worker == ""
    # An agent's task is nobody's to claim.
    await mesh.submit(TaskRequest(id="agents-1", tenant="acme", role="planner", prompt="Plan a CLI"))
    await mesh.wait("agents-1", timeout=30)
    with pytest.raises(DeskError, match="done by agents"):
        await desk.claim(holder, "agents-1")


async def test_capacity_availability_and_working_hours_hold_claims_back(mesh: Client) -> None:
    now = datetime.now(UTC)
    desk = Desk(mesh.bus, PeopleStore(mesh.bus), clock=lambda: now)
    jo = Caller("jo@acme", "acme", frozenset({"work"}))
    await PeopleStore(mesh.bus).put(Person(id="jo@acme", skills=["security"], capacity=1))
    for n in (1, 2):
        await mesh.submit(_review(f"cap-{n}"))
        await in_state(mesh, f"cap-{n}", "queued")
    await desk.claim(jo, "cap-1")
    await in_state(mesh, "cap-1", "running")
    with pytest.raises(DeskError, match="already holds 1 task"):
        await desk.claim(jo, "cap-2")
    await PeopleStore(mesh.bus).put(Person(id="jo@acme", skills=["security"], capacity=2, available=False))
    with pytest.raises(DeskError, match="marked unavailable"):
        await desk.claim(jo, "cap-2")
    off = (now + timedelta(hours=12)).strftime("%H:%M")
    hours = {"start": off, "end": off[:2] + ":59", "days": [1, 2, 3, 4, 5, 6, 7]}
    person = codec.decode(
        Person, json.dumps({"id": "jo@acme", "skills": ["security"], "capacity": 2, "hours": hours})
    )
    await PeopleStore(mesh.bus).put(person)
    with pytest.raises(DeskError, match="outside their working hours"):
        await desk.claim(jo, "cap-2")


async def test_an_agent_that_cannot_proceed_hands_its_step_to_the_right_human_queue(mesh: Client) -> None:
    # The tester's command fails: a person of `qa` judges it, and the workflow goes on with their answer.
    desk = Desk(mesh.bus, PeopleStore(mesh.bus))
    await PeopleStore(mesh.bus).put(Person(id="quinn@acme", skills=["qa"]))
    await PeopleStore(mesh.bus).put(Person(id="sec@acme", skills=["security"]))
    quinn = Caller("quinn@acme", "acme", frozenset({"work"}))
    judge = HandOff(
        queue="qa", work=HumanWork(form=AnswerForm(fields=[AnswerField(name="ship", kind="approval")]))
    )
    workflow = Workflow(
        id="wf-judged",
        tenant="acme",
        steps=[
            Step(name="test", role="tester", prompt="Run the suite", commands=["exit 3"], hand_off=judge),
            Step(name="docs", role="doc-writer", prompt="Notes: {{ steps.test.output }}", needs=["test"]),
        ],
    )
    await mesh.run_workflow(workflow)
    test_id = step_task_id("wf-judged", "test")
    queued = await in_state(mesh, test_id, "queued", within=60)
    while queued.role != "human:qa":  # queued for the tester first, then for the people
        queued = await in_state(mesh, test_id, "queued")
    assert queued.cost_micro_usd > 0 and queued.reason.startswith(
        "the tester could not proceed (test_failed)"
    )
    (handed,) = [e for e in await mesh.events(test_id) if isinstance(e, HandedOff)]
    assert handed.queue == "qa"
    ledger = await mesh.ledger("acme")
    assert ledger.spent_micro_usd == queued.cost_micro_usd  # the tester's attempt was paid for

    other = Caller("sec@acme", "acme", frozenset({"work"}))
    assert [r.id for r in await desk.inbox(other)] == []  # the right queue's people only
    assert [r.id for r in await desk.inbox(quinn)] == [test_id]
    work = await desk.work(quinn, test_id)
    assert work.assignment is not None
    request = work.assignment.request
    assert "Run the suite" in request.prompt and request.commands == []
    assert [f.path for f in request.context] == ["handed-off/agent-error.txt"]
    await desk.claim(quinn, test_id)
    await desk.complete(quinn, test_id, {"ship": True})
    record = await mesh.wait_workflow("wf-judged", timeout=60)
    assert record.state == "succeeded", record
    (docs,) = [e for e in await mesh.events(step_task_id("wf-judged", "docs")) if isinstance(e, Accepted)]
    assert docs.prompt_chars == len('Notes: {"ship":true}')
