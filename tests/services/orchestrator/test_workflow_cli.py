"""`maestro workflow ...`: its file errors without a mesh, and the real CLI against a real mesh."""

from __future__ import annotations

import asyncio
import json
import re
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from maestro import codec
from maestro.client import Client
from maestro.errors import NotFound
from maestro.settings import Settings
from proto.v1.workflows import Need, WorkflowRecord, step_task_id
from services.orchestrator.workflow_cli import WorkflowFileError, parse_workflow
from tests.e2e.conftest import open_mesh
from tests.e2e.test_cli import MAESTRO, env_for
from tests.maestro.test_presence import eventually

ROOT = Path(__file__).resolve().parents[3]
DIAMOND = ROOT / "examples" / "workflows" / "diamond.yaml"
HUMAN_REVIEW = ROOT / "examples" / "workflows" / "human-review.yaml"


@dataclass(frozen=True)
class Run:
    code: int
    out: list[str]
    err: str


async def maestro(tmp_path: Path, settings: Settings | None, *args: str, stdin: str = "") -> Run:
    """The real `maestro` command as a process, finding the mesh (if any) through MAESTRO_NATS_URL."""
    env = env_for(tmp_path / "cli")
    if settings is not None:
        env["MAESTRO_NATS_URL"] = str(settings.nats_url)
    process = await asyncio.create_subprocess_exec(
        MAESTRO, *args, cwd=tmp_path, env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate(stdin.encode())
    assert process.returncode is not None
    return Run(process.returncode, out.decode().splitlines(), err.decode())


# -- the file, no mesh ---------------------------------------------------------------------------------


def test_the_example_is_a_diamond_with_a_continue_edge_a_retry_and_a_time_out() -> None:
    workflow = parse_workflow(DIAMOND.read_text(), str(DIAMOND))
    needs = {s.name: [n.step for n in s.edges()] for s in workflow.steps}
    assert needs == {"plan": [], "implement": ["plan"], "docs": ["plan"], "review": ["implement", "docs"]}
    review = workflow.steps[3]
    assert Need(step="docs", on_failure="continue") in review.edges()
    implement = workflow.steps[1]
    assert implement.retry is not None and implement.retry.max_attempts == 3
    assert implement.timeouts is not None and implement.timeouts.start_to_close_s == 120


def test_the_readme_shows_the_example_file_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"^```yaml\n(.*?)^```", readme, re.M | re.S) if "\nsteps:" in b]
    assert blocks == [DIAMOND.read_text(), HUMAN_REVIEW.read_text()]


def test_the_human_example_has_a_person_s_step_with_a_form_and_an_agent_that_hands_off() -> None:
    workflow = parse_workflow(HUMAN_REVIEW.read_text(), str(HUMAN_REVIEW))
    security, test = workflow.steps[1], workflow.steps[2]
    assert security.role == "human:security" and security.human is not None
    assert [f.kind for f in security.human.form.fields] == ["approval", "choice", "text"]
    assert (security.human.on_breach, security.human.escalate_to) == ("widen", "leads")
    assert test.hand_off is not None and test.hand_off.queue == "qa"


BASE = DIAMOND.read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASE.replace("    prompt: Plan a CLI", "    promt: Plan a CLI"),
            "wf.yaml:8: steps[0].promt: unknown field `promt` (did you mean `prompt`?)",
        ),
        (
            BASE.replace("on_failure: continue", "on_failur: continue"),
            "steps[3].needs[1].on_failur: unknown field `on_failur` (did you mean `on_failure`?)",
        ),
        (
            BASE.replace("max_attempts: 3", "max_attempt: 3"),
            "steps[1].retry.max_attempt: unknown field `max_attempt` (did you mean `max_attempts`?)",
        ),
        (
            BASE.replace("on_failure: continue", "on_failure: carry_on"),
            "steps[3].needs[1].on_failure: Invalid enum value 'carry_on'",
        ),
        (
            BASE.replace("role: reviewer", "role: reviewr"),
            "steps[3].role: role 'reviewr' is neither an agent role (planner, scaffolder",
        ),
        (BASE.replace("needs: [plan]  ", "needs: [plon]  "), "steps[1].needs[0]: no step is named 'plon'"),
        (BASE.replace("start_to_close_s: 120", "start_to_close_s: -1"), "start_to_close_s: Expected"),
        (BASE.replace("tenant: acme\n", ""), "wf.yaml: tenant: Object missing required field `tenant`"),
        ("steps: [a, b\n", "wf.yaml:2: invalid YAML"),
        ("- a\n- b\n", "wf.yaml: expected a workflow"),
    ],
)
def test_a_bad_file_is_one_error_naming_its_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(WorkflowFileError) as raised:
        parse_workflow(text, "wf.yaml")
    message = str(raised.value)
    assert expected in message and "\n" not in message
    if "steps[" in expected:
        line = int(message.split(":")[1])
        field = message.split(": ")[1].rsplit(".", 1)[-1].split("[")[0]
        assert field in text.splitlines()[line - 1], (message, text.splitlines()[line - 1])


def test_tenant_and_id_given_on_the_command_line_replace_the_file_s() -> None:
    workflow = parse_workflow(BASE.replace("tenant: acme\n", ""), "wf.yaml", tenant="beta", workflow_id="w-2")
    assert (workflow.tenant, workflow.id) == ("beta", "w-2")


def test_json_is_read_as_well() -> None:
    text = json.dumps({"tenant": "acme", "steps": [{"name": "only", "role": "planner", "prompt": "Plan"}]})
    assert [s.name for s in parse_workflow(text, "wf.json").steps] == ["only"]


async def test_the_cli_refuses_a_bad_file_before_connecting_with_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(BASE.replace("needs: [plan]  ", "need: [plan]  "))
    run = await maestro(tmp_path, None, "workflow", "run", "wf.yaml")
    assert run.code == 1 and run.out == []
    assert (
        run.err == "maestro: error: wf.yaml:13: steps[1].need: unknown field `need` (did you mean `needs`?)\n"
    )

    stdin = await maestro(tmp_path, None, "workflow", "run", "-", stdin="tenant: acme\nsteps: []\n")
    assert stdin.code == 1 and stdin.err.startswith("maestro: error: -:2: steps: "), stdin.err

    bad_id = await maestro(tmp_path, None, "workflow", "status", "not/an/id")
    assert bad_id.code == 2 and "not a workflow id" in bad_id.err


# -- against a mesh ------------------------------------------------------------------------------------


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Client]:
    """The whole mesh in this process on a real nats-server."""
    async with AsyncExitStack() as stack:
        yield await open_mesh(settings, stack)


async def test_the_example_runs_to_success_and_status_shows_every_step(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    run = await maestro(tmp_path, settings, "workflow", "run", str(DIAMOND), "--id", "wf-cli", "--wait")

    assert run.code == 0, run
    workflow_id, state, header, *rows = run.out
    assert (workflow_id, state) == ("wf-cli", "succeeded")
    assert header.split() == ["step", "state", "attempts", "cost", "error"]
    assert [r.split()[:3] for r in rows] == [
        [n, "succeeded", "1"] for n in ("plan", "implement", "docs", "review")
    ]

    status = await maestro(tmp_path, settings, "workflow", "status", "wf-cli")
    assert status.code == 0, status
    assert re.search(r"^state\s+succeeded$", "\n".join(status.out), re.M)
    assert [line.split()[0] for line in status.out[-4:]] == ["plan", "implement", "docs", "review"]
    as_json = await maestro(tmp_path, settings, "workflow", "status", "wf-cli", "--json")
    record = codec.decode(WorkflowRecord, as_json.out[0])
    assert record == await mesh.workflow("wf-cli")
    assert f"cost       ${record.cost_micro_usd / 1_000_000:.6f}" in status.out and record.cost_micro_usd > 0


FAILING = """
tenant: acme
steps:
  - {name: test, role: tester, prompt: Run the tests, commands: ["exit 3"]}
  - {name: review, role: reviewer, prompt: "Tests {{ steps.test.state }}", needs: [test]}
"""


async def test_run_wait_exits_1_when_the_workflow_failed_and_says_why(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    run = await maestro(
        tmp_path, settings, "workflow", "run", "-", "--id", "wf-fails", "--wait", stdin=FAILING
    )

    assert run.code == 1, run
    assert run.out[1] == "failed: step test failed"
    rows = {r.split()[0]: r.split()[1] for r in run.out[3:]}
    assert rows == {"test": "failed", "review": "skipped"}

    other = FAILING.replace("exit 3", "exit 4")
    taken = await maestro(tmp_path, settings, "workflow", "run", "-", "--id", "wf-fails", stdin=other)
    assert taken.code == 1 and "wf-fails is taken by another workflow" in taken.err


async def test_watch_prints_each_change_until_the_workflow_ends(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    # The first step runs until the test opens its gate, which it does once the watch has shown the second
    # step waiting (the tester's commands run as the test's own user here: settings.sandbox is none).
    gate = tmp_path / "gate"
    chain = FAILING.replace('"exit 3"', f'"while [ ! -e {gate} ]; do sleep 0.05; done"')
    run = await maestro(tmp_path, settings, "workflow", "run", "-", "--tenant", "beta", stdin=chain)
    assert run.code == 0, run
    (workflow_id,) = run.out

    env = env_for(tmp_path / "cli")
    env["MAESTRO_NATS_URL"] = str(settings.nats_url)
    watch = await asyncio.create_subprocess_exec(
        MAESTRO, "workflow", "watch", workflow_id, "--timeout", "60", cwd=tmp_path, env=env, stdout=PIPE
    )
    assert watch.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(60):
        while line := (await watch.stdout.readline()).decode():
            lines.append(line)
            if line.split()[1:] == ["step", "review", "waiting"]:
                gate.touch()
        assert await watch.wait() == 0, lines

    changes = [line.split()[1:] for line in lines]
    assert gate.exists(), lines  # the watch showed the review waiting while its need ran
    assert changes[-1] == ["workflow", "succeeded"]
    for name in ("test", "review"):
        seen = [c[2] for c in changes if c[:2] == ["step", name]]
        assert seen[-1] == "succeeded" and len(seen) == len(set(seen)), lines
    assert (await mesh.workflow(workflow_id)).tenant == "beta"


SLOW = """
tenant: acme
steps:
  - {name: slow, role: tester, prompt: Wait, commands: ["sleep 30"]}
  - {name: after, role: reviewer, prompt: Review, needs: [slow]}
"""


async def test_pause_resume_and_cancel_a_running_workflow(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    run = await maestro(tmp_path, settings, "workflow", "run", "-", "--id", "wf-stop", stdin=SLOW)
    assert run.code == 0, run

    async def running() -> bool:
        try:
            return (await mesh.get(step_task_id("wf-stop", "slow"))).state == "running"
        except NotFound:
            return False

    await eventually(running, within=30)

    paused = await maestro(
        tmp_path, settings, "workflow", "pause", "wf-stop", "--by", "bob", "--reason", "freeze"
    )
    assert (paused.code, paused.out) == (0, ["paused wf-stop (by bob): freeze"]), paused
    assert (await mesh.workflow("wf-stop")).state == "paused"
    resumed = await maestro(tmp_path, settings, "workflow", "resume", "wf-stop", "--by", "bob")
    assert (resumed.code, resumed.out) == (0, ["resumed wf-stop (by bob)"]), resumed

    cancel = await maestro(
        tmp_path, settings, "workflow", "cancel", "wf-stop", "--by", "alice", "--reason", "wrong branch"
    )
    assert cancel.code == 0 and cancel.out[0].startswith("cancelled wf-stop (by alice): wrong branch"), cancel
    record = await mesh.wait_workflow("wf-stop", timeout=30)
    assert (record.state, record.cancelled_by) == ("cancelled", "alice")

    again = await maestro(tmp_path, settings, "workflow", "pause", "wf-stop")
    assert again.code == 1 and again.err.startswith("maestro: error: ") and again.err.count("\n") == 1


async def test_an_unknown_workflow_is_one_line_and_exit_1(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    for command in ("status", "cancel", "watch"):
        run = await maestro(tmp_path, settings, "workflow", command, "wf-none")
        assert (run.code, run.err) == (1, "maestro: error: no workflow wf-none\n"), (command, run)


async def test_the_readme_s_sdk_example_runs_a_chain_to_success(
    mesh: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"^```python\n(.*?)^```", readme, re.M | re.S) if "wait_workflow" in b]
    monkeypatch.setenv("MAESTRO_NATS_URL", str(settings.nats_url))
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(block, "README.md", "exec"), namespace)

    await namespace["main"]()  # type: ignore[operator]

    assert capsys.readouterr().out == "succeeded [('plan', 'succeeded'), ('review', 'succeeded')]\n"
