# ruff: noqa: F811 (each test takes the imported `secured` fixture by its name)
"""The operator console in a real browser (Debian's Chromium, driven by Playwright) against a real mesh
whose API asks for tokens: sign in, approve from the inbox by clicking, watch a workflow's graph turn green
as its steps end, read a task's page, see a budget's chart, and a read-only token sees no buttons."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from maestro.settings import Settings
from proto.v1 import RetryPolicy, TaskRequest
from proto.v1.budget import SetBudget
from proto.v1.humans import AnswerField, AnswerForm, HumanWork
from proto.v1.workflows import Step, Workflow
from tests.console.conftest import screenshot
from tests.e2e.conftest import in_state
from tests.e2e.test_api_access import Secured, secured  # noqa: F401 (the fixture, on this module's settings)
from tests.e2e.test_approval_flow import parked_task
from tests.e2e.test_human_work_http import listed_in_inbox
from tests.e2e.test_retries import hangs_once
from tests.e2e.test_retry_now import waiting_for_retry

WAIT_MS = 20_000


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Samples and tallies often enough for a chart within a test; approvals swept quickly."""
    return settings.with_(budget_sample_s=0.3, tally_s=0.3, approval_sweep_s=0.2, command_timeout_s=1.0)


def url(secured: Secured, where: str = "") -> str:
    return f"http://127.0.0.1:{secured.mesh.port}/ui/{where}"


async def signed_in(page: Page, secured: Secured, token: str, where: str = "#/approvals") -> None:
    """Open the console with `token` (as a link with the token in its fragment would) at `where`."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.context.errors = errors  # type: ignore[attr-defined]
    await page.goto(url(secured, f"#token={token}"))
    await expect(page.locator("#identity")).not_to_be_empty(timeout=WAIT_MS)
    assert "token=" not in page.url  # taken out of the address bar at once
    await page.goto(url(secured, where))


async def ops_person(secured: Secured) -> str:
    """alice@acme, made a person of the ops queue by an operator: her `work` token."""
    operator = await secured.token("*", "admin", subject="ops@maestro")
    person = {"id": "alice@acme", "skills": ["ops"], "capacity": 2}
    assert (await secured.call("PUT", "/v1/people/alice@acme", operator, person))[0] == 200
    return await secured.token("acme", "work", subject="alice@acme")


def no_script_errors(page: Page) -> None:
    assert page.context.errors == []  # type: ignore[attr-defined]


async def test_a_person_signs_in_with_a_token_and_a_wrong_one_is_refused(
    page: Page,
    secured: Secured,
) -> None:
    operator = await secured.token("*", "admin", subject="ops@maestro")
    await page.goto(url(secured))
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    await page.get_by_label("Token").fill("mst_0123456789abcdef_" + "x" * 43)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("That token was refused.")

    await page.get_by_label("Token").fill(operator)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#identity")).to_contain_text("ops@maestro · every tenant · admin")
    await expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_approving_from_the_inbox_runs_the_task_and_a_second_person_sees_who_decided(
    page: Page, secured: Secured
) -> None:
    alice = await secured.token("acme", "approve", "read", subject="alice@acme")
    bob = await secured.token("acme", "approve", "read", subject="bob@acme")
    client = secured.mesh.client
    await parked_task(client, "t-first")
    await parked_task(client, "t-second")

    await signed_in(page, secured, alice)
    cards = page.locator("article.approval")
    await expect(cards).to_have_count(2, timeout=WAIT_MS)
    await expect(cards.nth(0)).to_have_attribute("data-task", "t-first")  # oldest first
    first = cards.nth(0)
    await expect(first).to_contain_text("Times out in")
    await expect(first.locator("table.findings")).to_contain_text("region")  # the rule that parked it
    await expect(page.locator("#approvals-count")).to_have_text("2")
    await screenshot(page, "approvals", full_page=True)

    # Bob has the same inbox open in another browser, whose live updates do not arrive (a stale page).
    other = await page.context.browser.new_context(viewport={"width": 1280, "height": 800})  # type: ignore[union-attr]
    bobs = await other.new_page()
    await bobs.route("**/v1/events*", lambda route: route.abort())
    await signed_in(bobs, secured, bob)
    await expect(bobs.locator("article.approval")).to_have_count(2, timeout=WAIT_MS)

    await first.get_by_role("button", name="Approve task t-first").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Approve task t-first?")
    await dialog.get_by_label("Reason (optional)").fill("checked the region")
    await dialog.get_by_role("button", name="Approve").click()
    await expect(page.locator("#notice")).to_contain_text("Approved t-first as alice@acme")

    record = await client.wait("t-first", timeout=30)
    assert (record.state, record.approved_by, record.approval_reason) == (
        "succeeded",
        "alice@acme",
        "checked the region",
    )
    # Live: the decided task leaves Alice's inbox without a reload.
    await expect(cards).to_have_count(1, timeout=WAIT_MS)
    await expect(page.locator("#approvals-count")).to_have_text("1")

    # Bob's stale card: his click is refused, and he is told who decided first.
    stale = bobs.locator("article.approval", has_text="t-first")
    await stale.get_by_role("button", name="Approve task t-first").click()
    await bobs.get_by_role("dialog").get_by_role("button", name="Approve").click()
    await expect(bobs.locator("#notice")).to_contain_text("already approved by alice@acme")
    await expect(bobs.locator("article.approval")).to_have_count(1, timeout=WAIT_MS)  # read again after
    assert (await client.get("t-first")).approved_by == "alice@acme"

    # A rejection needs a reason.
    await cards.nth(0).get_by_role("button", name="Reject task t-second").click()
    await expect(page.get_by_role("dialog")).to_contain_text("Reject task t-second?")
    await page.get_by_role("dialog").get_by_label("Reason (required)").fill("not this quarter")
    await page.get_by_role("dialog").get_by_role("button", name="Reject").click()
    rejected = await in_state(client, "t-second", "rejected")
    assert (rejected.rejected_by, rejected.reason) == (
        "alice@acme",
        "rejected by alice@acme: not this quarter",
    )
    await expect(page.get_by_text("Nothing awaits approval.")).to_be_visible(timeout=WAIT_MS)
    no_script_errors(page)
    await other.close()


async def test_a_read_only_token_sees_the_inbox_and_a_task_but_no_button(
    page: Page,
    secured: Secured,
) -> None:
    reader = await secured.token("acme", "read", subject="carl@acme")
    await parked_task(secured.mesh.client, "t-look")

    await signed_in(page, secured, reader)
    card = page.locator("article.approval")
    await expect(card).to_have_count(1, timeout=WAIT_MS)
    await expect(card).to_contain_text("This token may not decide")
    await expect(page.get_by_role("button", name=re.compile("Approve|Reject"))).to_have_count(0)

    await card.get_by_role("link", name="t-look").click()
    await expect(page.get_by_role("heading", name="Task t-look")).to_be_visible()
    await expect(page.locator("section").first).to_contain_text("awaiting approval")
    await expect(page.get_by_role("button", name="Cancel task")).to_have_count(0)
    no_script_errors(page)


async def test_a_task_page_shows_its_record_timeline_decision_and_budget_and_cancels(
    page: Page, secured: Secured
) -> None:
    operator = await secured.token("*", "admin", subject="ops@maestro")
    client = secured.mesh.client
    await client.submit(TaskRequest(id="t-ran", tenant="acme", role="planner", prompt="Plan a CLI"))
    done = await client.wait("t-ran", timeout=30)
    assert done.state == "succeeded"
    await parked_task(client, "t-park")

    await signed_in(page, secured, operator, "#/tasks")
    rows = page.locator("table.tasks tbody tr")
    await expect(rows.filter(has_text="t-ran")).to_have_count(1, timeout=WAIT_MS)
    await page.get_by_label("State").select_option("succeeded")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-task", "t-ran")
    await screenshot(page, "tasks")

    # Live: a task submitted while the list shows appears in it.
    await page.get_by_label("State").select_option("")
    await page.get_by_role("button", name="Filter").click()
    await client.submit(TaskRequest(id="t-later", tenant="acme", role="planner", prompt="Plan a TUI"))
    await expect(rows.filter(has_text="t-later")).to_have_count(1, timeout=WAIT_MS)

    await rows.filter(has_text="t-ran").get_by_role("link").click()
    await expect(page.get_by_role("heading", name="Task t-ran")).to_be_visible()
    timeline = page.locator("ol.timeline li")
    await expect(timeline.first).to_have_attribute("data-kind", "task.accepted")
    await expect(timeline.last).to_have_attribute("data-kind", "task.succeeded")
    await expect(page.locator("section", has_text="Guard decision")).to_contain_text("Verdict allow")
    charged = f"${done.cost_micro_usd / 1e6:.4f}" if done.cost_micro_usd < 1_000_000 else ""
    await expect(page.locator("section", has_text="Budget")).to_contain_text(charged)
    await expect(page.locator("pre.output")).to_contain_text(done.output[:40])
    await screenshot(page, "task", full_page=True)

    await page.goto(url(secured, "#/tasks/t-park"))
    await page.get_by_role("button", name="Cancel task").click()
    await page.get_by_role("dialog").get_by_role("button", name="Cancel task").click()
    cancelled = await in_state(client, "t-park", "cancelled")
    assert cancelled.cancelled_by == "ops@maestro"
    await expect(page.locator("section").first).to_contain_text("cancelled", timeout=WAIT_MS)
    no_script_errors(page)


async def test_a_task_waiting_out_its_back_off_is_retried_now_from_its_page(
    page: Page, secured: Secured, tmp_path: Path
) -> None:
    alice = await secured.token("acme", "submit", "read", subject="alice@acme")
    client = secured.mesh.client
    request = TaskRequest(
        id="t-backoff",
        tenant="acme",
        role="tester",
        prompt="Run the suite",
        commands=[hangs_once(tmp_path / "ran")],
        retry=RetryPolicy(max_attempts=2, initial_backoff_s=3600, max_backoff_s=3600, jitter=0),
    )
    await client.submit(request)
    await waiting_for_retry(client, "t-backoff")

    await signed_in(page, secured, alice, "#/tasks/t-backoff")
    await expect(page.locator("section").first).to_contain_text("Next attempt", timeout=WAIT_MS)
    await page.get_by_role("button", name="Retry now").click()
    await page.get_by_role("dialog").get_by_role("button", name="Retry now").click()
    await expect(page.locator("#notice")).to_contain_text("Attempt 2 of t-backoff runs now")
    done = await client.wait("t-backoff", timeout=30)
    assert (done.state, done.attempts) == ("succeeded", 2)
    await expect(page.locator("section").first).to_contain_text("succeeded", timeout=WAIT_MS)
    await expect(page.get_by_role("button", name="Retry now")).to_have_count(0)
    no_script_errors(page)


async def test_a_person_claims_and_answers_a_human_task_from_my_work(
    page: Page,
    secured: Secured,
) -> None:
    alice = await ops_person(secured)
    form = AnswerForm(
        fields=[
            AnswerField(name="decision", kind="choice", choices=["ship", "hold"]),
            AnswerField(name="notes", kind="text", required=False),
        ]
    )
    client = secured.mesh.client
    task = TaskRequest(
        id="deploy-ui",
        tenant="acme",
        role="human:ops",
        prompt="Run the migration by hand",
        human=HumanWork(form=form),
    )
    await client.submit(task)
    await in_state(client, "deploy-ui", "queued")
    await listed_in_inbox(secured, alice)

    await signed_in(page, secured, alice, "#/work")
    await expect(page.get_by_role("link", name="My work")).to_be_visible()
    card = page.locator("article[data-task=deploy-ui]")
    await card.get_by_role("button", name="Claim task deploy-ui").click()
    await expect(page.get_by_role("heading", name="Task deploy-ui")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("pre.output")).to_contain_text("Run the migration by hand")
    await page.get_by_label("decision").select_option("ship")
    await page.get_by_label("notes (optional)").fill("done at 10:02")
    await screenshot(page, "work", full_page=True)
    await page.get_by_role("button", name="Send the answer").click()
    await expect(page.locator("#notice")).to_contain_text("Answered deploy-ui")

    record = await in_state(client, "deploy-ui", "succeeded")
    assert json.loads(record.output) == {"decision": "ship", "notes": "done at 10:02"}
    assert record.worker == "alice@acme"
    await expect(page.get_by_text("Nothing waits for you.")).to_be_visible(timeout=WAIT_MS)
    no_script_errors(page)


async def test_a_workflow_graph_turns_green_live_as_its_steps_end(
    page: Page,
    secured: Secured,
) -> None:
    operator = await secured.token("*", "admin", subject="ops@maestro")
    alice = await ops_person(secured)
    form = AnswerForm(fields=[AnswerField(name="go", kind="approval")])
    workflow = Workflow(
        id="wf-ui",
        tenant="acme",
        steps=[
            Step(name="plan", role="planner", prompt="Plan a CLI"),
            Step(
                name="review",
                role="human:ops",
                prompt="Is the plan sound?",
                needs=["plan"],
                human=HumanWork(form=form),
            ),
            Step(name="build", role="scaffolder", prompt="Scaffold it", needs=["review"]),
            Step(name="docs", role="doc-writer", prompt="Document it", needs=["review"]),
        ],
    )
    client = secured.mesh.client
    await client.run_workflow(workflow)
    await in_state(client, "wf-ui-review", "queued")

    await signed_in(page, secured, operator, "#/workflows/wf-ui")

    def node(step: str) -> Locator:
        return page.locator(f'svg.dag g.node[data-step="{step}"]')

    await expect(node("plan")).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    await expect(node("review")).to_have_attribute("data-state", "queued")
    await expect(node("build")).to_have_attribute("data-state", "waiting")
    await expect(page.locator("svg.dag path.edge")).to_have_count(3)

    # A person answers the review; the rest run; the page redraws from the events, no reload.
    assert (await secured.call("POST", "/v1/tasks/wf-ui-review/claim", alice, {}))[0] == 200
    answer = {"answer": {"go": True}}
    assert (await secured.call("POST", "/v1/tasks/wf-ui-review/complete", alice, answer))[0] == 200
    for step in ("review", "build", "docs"):
        await expect(node(step)).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    await expect(page.locator(".graph")).to_have_attribute("data-state", "succeeded", timeout=WAIT_MS)
    await screenshot(page, "workflow", full_page=True)

    await page.locator('svg.dag a[aria-label^="step build"]').click()
    await expect(page.get_by_role("heading", name="Task wf-ui-build")).to_be_visible()
    await expect(page.get_by_role("link", name="wf-ui", exact=True)).to_be_visible()
    no_script_errors(page)


async def test_a_budget_page_charts_spend_and_lists_the_alerts_that_fired(
    page: Page,
    secured: Secured,
) -> None:
    operator = await secured.token("*", "admin", subject="ops@maestro")
    client = secured.mesh.client
    await client.set_budget(SetBudget(tenant="acme", limit_micro_usd=200_000))
    for i in range(3):
        await client.submit(
            TaskRequest(id=f"t-spend-{i}", tenant="acme", role="planner", prompt="Plan a CLI")
        )
        assert (await client.wait(f"t-spend-{i}", timeout=30)).state == "succeeded"
    ledger = await client.ledger("acme")
    assert ledger.spent_micro_usd > 0

    await signed_in(page, secured, operator, "#/budgets/acme")
    card = page.locator("section[data-tenant=acme]")
    await expect(card).to_contain_text(f"${ledger.spent_micro_usd / 1e6:.4f}", timeout=WAIT_MS)
    await expect(card.locator(".total.limit")).to_contain_text("$0.2000")
    chart = page.locator("figure.chart svg")
    await expect(chart.locator("g.series.spent polyline")).to_have_count(1, timeout=WAIT_MS)
    points = await chart.locator("g.series.spent polyline").get_attribute("points")
    assert points and len(points.split()) >= 1
    await expect(page.locator("figure.chart figcaption")).to_contain_text("Spent and held")
    await screenshot(page, "budgets", full_page=True)
    no_script_errors(page)


async def test_the_policy_page_shows_the_bundle_in_force_and_the_decisions(
    page: Page,
    secured: Secured,
) -> None:
    operator = await secured.token("*", "admin", subject="ops@maestro")
    client = secured.mesh.client
    await parked_task(client, "t-policy")
    status, bundle, _ = await secured.call("GET", "/v1/policy", operator)
    assert status == 200

    await signed_in(page, secured, operator, "#/policy")
    section = page.locator("section", has_text="Bundle in force")
    await expect(section).to_contain_text(bundle["version"], timeout=WAIT_MS)
    await expect(section).to_contain_text(bundle["hash"])
    decisions = page.locator("section", has_text="Decisions over")
    # The guard's tallies come every 0.3 s here; the page reads them again every 30 s, so it is opened
    # again until the parked task's decision shows.
    for _ in range(40):
        if await decisions.locator(".total.approve strong").text_content() == "1":
            break
        await page.reload()
        await expect(decisions).to_be_visible(timeout=WAIT_MS)
    await expect(decisions.locator(".total.approve strong")).to_have_text("1")
    await expect(decisions.locator("svg.chart rect.part.approve")).to_have_count(1)
    await expect(decisions.locator("table.rules")).to_contain_text("residency.unknown-location")
    over_time = decisions.locator("figure.chart", has_text="Rules that fired, over time")
    await expect(over_time.locator("rect.part.rule-0")).to_have_count(1)
    await expect(over_time.locator("ul.legend")).to_contain_text("residency.unknown-location")
    await screenshot(page, "policy", full_page=True)
    no_script_errors(page)
