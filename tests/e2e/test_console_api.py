"""What the console stands on, over HTTP with tokens: the page and its files (with a strict CSP), who a
token is (/v1/me), every event a token may see as Server-Sent Events (/v1/events), and a task's files."""

# ruff: noqa: F811 (each test takes the imported `secured` fixture by its name)
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from proto.v1 import TaskRequest
from tests.e2e.test_api_access import Secured, secured  # noqa: F401 (the fixture)


async def test_the_console_page_and_its_files_are_served_with_a_strict_policy(secured: Secured) -> None:
    base = f"http://127.0.0.1:{secured.mesh.port}"
    async with secured.http.get(f"{base}/ui/") as page:
        assert page.status == 200 and page.content_type == "text/html"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert '<script type="module" src="/ui/app.js">' in await page.text()
        etag = page.headers["ETag"]
    async with secured.http.get(f"{base}/ui/", headers={"If-None-Match": etag}) as again:
        assert again.status == 304
    async with secured.http.get(f"{base}/ui/app.js") as script:
        assert script.status == 200 and script.content_type == "text/javascript"
    async with secured.http.get(f"{base}/ui/console.css") as style:
        assert style.status == 200 and style.content_type == "text/css"
    for missing in ("/ui/nothing.js", "/ui/index.html", "/ui/..%2Fapi.py", "/ui/app.py"):
        async with secured.http.get(f"{base}{missing}") as resp:
            assert resp.status in (400, 404), missing
            assert "error" in await resp.json()


async def test_a_token_learns_who_it_is_and_what_it_may_do(secured: Secured) -> None:
    operator = await secured.token("*", "admin", subject="ops@maestro")
    reader = await secured.token("acme", "read", "work", subject="carl@acme")
    status, body, _ = await secured.call("GET", "/v1/me", operator)
    assert status == 200 and body == {
        "subject": "ops@maestro",
        "tenant": "*",
        "scopes": ["admin"],
        "operator": True,
    }
    status, body, _ = await secured.call("GET", "/v1/me", reader)
    assert status == 200
    assert (body["subject"], body["tenant"], body["scopes"], body["operator"]) == (
        "carl@acme",
        "acme",
        ["read", "work"],
        False,
    )
    assert (await secured.call("GET", "/v1/me", None))[0] == 401


class Frames:
    """The Server-Sent Events of one open GET /v1/events, read as they come."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self, within: float = 15.0) -> dict[str, Any]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            while True:
                line = (await self.resp.content.readline()).decode().rstrip("\n")
                if line == "" and "data" in fields:
                    return {"id": int(fields["id"]), "event": fields["event"], **json.loads(fields["data"])}
                if line and not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    fields[name] = value


async def follow(secured: Secured, token: str, query: str, last: int | None = None) -> aiohttp.ClientResponse:
    headers = {"Authorization": f"Bearer {token}"}
    if last is not None:
        headers["Last-Event-ID"] = str(last)
    resp = await secured.http.get(f"http://127.0.0.1:{secured.mesh.port}/v1/events{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    assert await resp.content.readline() == b": open\n"  # the stream is open before any event
    return resp


async def test_events_stream_live_to_whoever_may_see_them_narrowed_and_resumable(secured: Secured) -> None:
    acme = await secured.token("acme", "read", subject="carl@acme")
    operator = await secured.token("*", "admin", subject="ops@maestro")
    client = secured.mesh.client

    mine = await follow(secured, acme, "")
    ends = await follow(secured, operator, "?kind=task.succeeded&kind=task.rejected")
    one = await follow(secured, operator, "?tenant=acme&task=t-two")
    await client.submit(TaskRequest(id="t-other", tenant="globex", role="planner", prompt="Plan"))
    await client.wait("t-other", timeout=30)
    await client.submit(TaskRequest(id="t-one", tenant="acme", role="planner", prompt="Plan"))
    await client.wait("t-one", timeout=30)
    await client.submit(TaskRequest(id="t-two", tenant="acme", role="planner", prompt="Plan"))
    await client.wait("t-two", timeout=30)

    seen = [await Frames(mine).next() for _ in range(8)]  # accepted, queued, started, succeeded: twice
    assert {(f["tenant"], f["task_id"]) for f in seen} == {("acme", "t-one"), ("acme", "t-two")}
    assert [f["event"] for f in seen if f["task_id"] == "t-one"] == [
        "task.accepted",
        "task.queued",
        "task.started",
        "task.succeeded",
    ]
    assert all(f["event"] == f["kind"] for f in seen)
    assert [f["id"] for f in seen] == sorted(f["id"] for f in seen)
    ended = [await Frames(ends).next() for _ in range(3)]
    assert [(f["task_id"], f["event"]) for f in ended] == [
        ("t-other", "task.succeeded"),
        ("t-one", "task.succeeded"),
        ("t-two", "task.succeeded"),
    ]
    only = [await Frames(one).next() for _ in range(4)]
    assert {f["task_id"] for f in only} == {"t-two"}
    for resp in (mine, ends, one):
        resp.close()

    # A client that lost the stream resumes after the last id it saw, and misses nothing.
    again = await follow(secured, acme, "", last=seen[3]["id"])
    resumed = [await Frames(again).next() for _ in range(4)]
    assert [f["id"] for f in resumed] == [f["id"] for f in seen[4:]]
    again.close()


async def test_events_refuse_what_a_token_may_not_see_and_what_cannot_be_followed(secured: Secured) -> None:
    acme = await secured.token("acme", "read", subject="carl@acme")
    worker = await secured.token("acme", "work", subject="dora@acme")
    operator = await secured.token("*", "admin", subject="ops@maestro")
    cases = [
        (acme, "?tenant=globex", 403, "tenant"),
        (worker, "", 403, None),
        (acme, "?kind=task.nothing", 400, "kind"),
        (operator, "?task=t-1", 400, "task"),  # a task id is unique within its tenant only
        (acme, "?tenant=acme&task=bad.id", 400, "task"),
        (acme, "?tenant=Not_A_Tenant", 400, "tenant"),
        (acme, "?tenat=acme", 400, "tenat"),
        (acme, "?tenant=acme&" + "&".join(f"task=t-{i}" for i in range(65)), 400, "task"),
    ]
    for token, query, status, field in cases:
        code, body, _ = await secured.call("GET", f"/v1/events{query}", token)
        assert code == status, (query, body)
        assert body.get("field") == field, (query, body)
    headers = {"Authorization": f"Bearer {acme}", "Last-Event-ID": "nine"}
    async with secured.http.get(f"http://127.0.0.1:{secured.mesh.port}/v1/events", headers=headers) as resp:
        assert resp.status == 400 and (await resp.json())["field"] == "Last-Event-ID"
    assert (await secured.call("GET", "/v1/events", None))[0] == 401


async def test_a_task_file_downloads_for_its_tenant_only(secured: Secured) -> None:
    acme = await secured.token("acme", "read", subject="carl@acme")
    globex = await secured.token("globex", "read", subject="gail@globex")
    client = secured.mesh.client
    await client.submit(TaskRequest(id="t-files", tenant="acme", role="scaffolder", prompt="Lay out a CLI"))
    record = await client.wait("t-files", timeout=30)
    assert record.state == "succeeded" and record.artifacts, record
    first = record.artifacts[0]

    url = f"http://127.0.0.1:{secured.mesh.port}/v1/tasks/t-files/artifacts/0"
    async with secured.http.get(url, headers={"Authorization": f"Bearer {acme}"}) as resp:
        assert resp.status == 200
        assert (
            resp.headers["Content-Disposition"] == f'attachment; filename="{first.name.rsplit("/", 1)[-1]}"'
        )
        assert len(await resp.read()) == first.size
    beyond = len(record.artifacts)
    assert (await secured.call("GET", f"/v1/tasks/t-files/artifacts/{beyond}", acme))[0] == 404
    assert (await secured.call("GET", "/v1/tasks/t-files/artifacts/0", globex))[0] == 404
    assert (await secured.call("GET", "/v1/tasks/t-files/artifacts/x", acme))[0] == 400
