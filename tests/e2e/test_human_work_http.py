"""Human work over the HTTP API with tokens: people managed by an operator, the inbox, the work a task asks,
claims, completions and releases, each as the token's own person; another tenant's task does not exist."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from proto.v1 import TaskRequest
from proto.v1.humans import AnswerField, AnswerForm, HumanWork
from tests.e2e.conftest import in_state, recorded
from tests.e2e.test_api_access import Secured, secured  # noqa: F401 (the fixture)

FORM = AnswerForm(fields=[AnswerField(name="decision", kind="choice", choices=["ship", "hold"])])


async def listed_in_inbox(secured: Secured, token: str) -> tuple[int, Any, aiohttp.ClientResponse]:  # noqa: F811
    """The ops queue's inbox as `token` sees it, once it lists a task (it reads the records, which lag a
    just-queued task's events)."""
    return await recorded(
        lambda: secured.call("GET", "/v1/inbox?queue=ops", token), lambda answer: answer[1] != []
    )


async def test_a_person_claims_reads_and_completes_a_task_through_the_api_as_their_token_says(
    secured: Secured,  # noqa: F811
) -> None:
    operator = await secured.token("*", "admin", subject="ops@maestro")
    alice = await secured.token("acme", "work", subject="alice@acme")
    bob = await secured.token("acme", "work", subject="bob@acme")
    reader = await secured.token("acme", "read", subject="carl@acme")
    globex = await secured.token("globex", "work", subject="alice@acme")

    person = {"id": "alice@acme", "skills": ["ops"], "capacity": 2, "timezone": "Europe/Paris"}
    assert (await secured.call("PUT", "/v1/people/alice@acme", alice, person))[0] == 403
    status, stored, _ = await secured.call("PUT", "/v1/people/alice@acme", operator, person)
    assert status == 200 and stored["skills"] == ["ops"]
    status, problem, _ = await secured.call("PUT", "/v1/people/bob@acme", operator, person)
    assert status == 400 and problem["field"] == "$.id"
    status, everyone, _ = await secured.call("GET", "/v1/people", reader)
    assert status == 200 and [p["id"] for p in everyone] == ["alice@acme"]

    client = secured.mesh.client
    task = TaskRequest(
        id="deploy-1",
        tenant="acme",
        role="human:ops",
        prompt="Run the migration by hand",
        human=HumanWork(form=FORM),
    )
    await client.submit(task)
    await in_state(client, "deploy-1", "queued")

    status, inbox, _ = await listed_in_inbox(secured, alice)
    assert status == 200 and [r["id"] for r in inbox] == ["deploy-1"]
    assert (await secured.call("GET", "/v1/inbox", bob))[1] == []  # bob is no person yet: nothing to serve
    assert (await secured.call("GET", "/v1/inbox", reader))[0] == 403
    assert (await secured.call("GET", "/v1/inbox?queue=Bad.Queue", alice))[0] == 400
    status, work, _ = await secured.call("GET", "/v1/inbox/deploy-1", alice)
    assert status == 200 and work["request"]["prompt"] == "Run the migration by hand"
    assert work["request"]["human"]["form"]["fields"][0]["choices"] == ["ship", "hold"]
    assert (await secured.call("GET", "/v1/inbox/deploy-1", globex))[0] == 404

    status, refused, _ = await secured.call("POST", "/v1/tasks/deploy-1/claim", bob, {})
    assert status == 403 and "bob@acme does not serve the ops queue" in refused["error"]
    assert (await secured.call("POST", "/v1/tasks/deploy-1/claim", alice, {"by": "bob@acme"}))[0] == 403
    assert (await secured.call("POST", "/v1/tasks/deploy-1/claim", globex, {}))[0] == 404
    status, claimed, _ = await secured.call("POST", "/v1/tasks/deploy-1/claim", alice, {})
    assert status == 200 and claimed["by"] == "alice@acme" and claimed["lease_until"]
    await in_state(client, "deploy-1", "running")

    bad = {"answer": {"decision": "yolo"}}
    status, problem, _ = await secured.call("POST", "/v1/tasks/deploy-1/complete", alice, bad)
    assert status == 400 and "'decision' expects one of 'ship', 'hold'" in problem["error"]
    typo = {"answer": {"decision": "ship"}, "answr": {}}
    status, unknown, _ = await secured.call("POST", "/v1/tasks/deploy-1/complete", alice, typo)
    assert status == 400 and unknown["field"] == "$.answr"
    status, done, _ = await secured.call(
        "POST", "/v1/tasks/deploy-1/complete", alice, {"answer": {"decision": "ship"}}
    )
    assert (
        status == 200
        and json.loads(done["output"]) == {"decision": "ship"}
        and done["worker"] == "alice@acme"
    )
    again = await secured.call("POST", "/v1/tasks/deploy-1/complete", alice, {"answer": {"decision": "ship"}})
    assert again[0] == 200 and again[1] == done  # a retry answers the same completion
    assert (await secured.call("POST", "/v1/tasks/deploy-1/release", alice, {}))[0] == 409
    record = await in_state(client, "deploy-1", "succeeded")
    assert record.worker == "alice@acme"

    status, removed, _ = await secured.call("DELETE", "/v1/people/alice@acme", operator)
    assert status == 200 and removed["id"] == "alice@acme"
    assert (await secured.call("DELETE", "/v1/people/alice@acme", operator))[0] == 404
