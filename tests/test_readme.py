"""The README's examples, run: its links, its commands, its policy bundle and its tester example."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shlex
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import pytest

from maestro import codec, pricing, topics
from maestro.cli import _parser
from maestro.client import Client
from maestro.embedded import start_nats_server
from maestro.estimates import Prices
from maestro.policy import bundle
from maestro.policy.bundle import Bundle
from maestro.policy.engine import evaluate
from maestro.policy.policies import residency
from maestro.settings import Settings
from proto.v1 import ROLES, TaskRequest
from services.agents.backends import OfflineBackend
from services.agents.sandbox import Sandbox
from tests.e2e.conftest import open_mesh

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
# How a running guard judges (the default MAESTRO_MODELS), and how check-pr does (no model served).
AS_A_RUNNING_GUARD_JUDGES = Prices.of(Settings())
AS_CHECK_PR_JUDGES = Prices()


def _links(text: str) -> list[str]:
    """The targets of the markdown links in `text`, without their #fragment."""
    return [target.split("#", 1)[0] for target in re.findall(r"\]\(([^)\s]+)\)", text)]


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_link_stays_inside_the_repository_and_resolves(page: Path) -> None:
    for target in _links(page.read_text()):
        if not target or re.match(r"^[a-z]+:", target):
            continue  # a fragment of the same page, or a URL
        resolved = (page.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert resolved.exists(), f"{page.name} links to {target}, which does not exist"


def test_the_readme_points_at_the_architecture_document() -> None:
    assert "docs/ARCHITECTURE.md" in _links(README)


def _blocks(language: str) -> list[str]:
    """The README's fenced code blocks in `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.M | re.S)


# -- what the README says the agents and the sandbox are -----------------------------------------------


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"the README has no section {title!r}"
    return match.group(1)


def test_every_maestro_variable_the_readme_names_is_a_setting() -> None:
    settings = {f"MAESTRO_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    streams = {value for name, value in vars(topics).items() if name.startswith("STREAM_")}
    named = set(re.findall(r"\bMAESTRO_[A-Z0-9_]*[A-Z0-9]\b", README))
    assert named - settings - streams == set()


async def test_the_agents_are_the_offline_backend_as_the_readme_describes_it() -> None:
    section = _section("The agents")
    assert "offline backend" in section and "characters / 4, rounded up" in section
    backend = OfflineBackend(("offline", "gpt-4o"))
    prompt = "Plan a CLI that counts words"
    first = await backend.complete("planner", prompt, "gpt-4o")
    assert first == await backend.complete("planner", prompt, "gpt-4o")  # deterministic
    assert first.usage.model == "gpt-4o"  # answers as the model asked for, so it is billed as that model
    assert first.usage.input_tokens == -(-len(prompt) // 4)
    assert first.usage.output_tokens == -(-len(first.text) // 4)
    default = await backend.complete("planner", prompt, None)
    assert default.usage.model == "offline"  # the first model served is the default


def test_a_model_the_agents_do_not_serve_is_refused_by_the_rule_the_readme_names() -> None:
    (rule,) = set(re.findall(r"`(models\.[a-z-]+)`", _section("The agents")))
    request = TaskRequest(tenant="acme", role="planner", prompt="Plan a CLI", model="o3")
    judgement = evaluate(
        request, len(codec.encode(request)), bundle.load_default(), AS_A_RUNNING_GUARD_JUDGES
    )
    assert judgement.decision.verdict == "deny"
    assert judgement.deciding is not None and judgement.deciding.rule_id == rule


async def test_a_sandboxed_command_sees_only_the_environment_the_readme_lists(tmp_path: Path) -> None:
    section = _section("The agents")
    listed = re.search(r"a new environment: only (.*?), none of", section, re.S)
    assert listed, "the README should list the sandbox's environment"
    names = set(re.findall(r"`([A-Z_]+)`", listed.group(1)))
    result = await Sandbox(timeout_s=10).run("env", tmp_path)
    # sh itself sets its working directory and shell level; everything else came from the sandbox.
    seen = {line.split("=", 1)[0] for line in result.output.splitlines() if "=" in line}
    assert seen - {"PWD", "OLDPWD", "SHLVL", "_"} == names


# -- the commands ------------------------------------------------------------------------------------


def _maestro_commands() -> list[str]:
    """Each `maestro ...` command of the README's shell blocks, its comment, redirections and optional
    parts dropped, the first of its alternatives (`a|b`) kept and its placeholders (ID, FILE) filled in."""
    found = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line)  # a comment (never inside the quotes these lines use)
            line = re.sub(r"\s*\[[^\]]*\]", "", line)  # optional parts
            for part in re.split(r" \| ", line):
                part = re.sub(r"\s*<\s*\S+$", "", part.strip())  # stdin redirection
                if part.startswith("maestro "):
                    found.append(part)
    return found


def _filled(command: str) -> list[str]:
    words = shlex.split(command)[1:]
    firsts = [w.split("|", 1)[0] for w in words]
    return ["1" if re.fullmatch(r"[A-Z][A-Z_]*", w) else w for w in firsts]


@pytest.mark.parametrize("command", _maestro_commands())
def test_every_maestro_command_in_the_readme_parses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        _parser().parse_args(_filled(command))
    except SystemExit as exc:
        pytest.fail(f"{command!r} does not parse (exit {exc.code}): {capsys.readouterr().err.strip()}")


def test_the_readme_has_maestro_commands_to_check() -> None:
    assert len(_maestro_commands()) > 10


# -- the complete policy bundle ------------------------------------------------------------------------


def _complete_bundle() -> Bundle:
    """The README's complete bundle: its YAML block that has a version, a default and tenants."""
    complete = [b for b in _blocks("yaml") if re.search(r"^version:.*^default:.*^tenants:", b, re.M | re.S)]
    assert len(complete) == 1, "the README should have one complete bundle example"
    return bundle.parse(complete[0])


def _readme_requests() -> list[TaskRequest]:
    """The README's own example requests: its JSON `TaskRequest` blocks."""
    return [codec.decode_strict(TaskRequest, b) for b in _blocks("json") if '"role"' in b]


BUNDLE = _complete_bundle()


def test_the_complete_bundle_has_no_problem_policy_check_would_report() -> None:
    for tenant in ("", *BUNDLE.tenants):
        assert list(residency.problems(BUNDLE.policy(tenant).residency)) == [], tenant


@pytest.mark.parametrize("prices", [AS_A_RUNNING_GUARD_JUDGES, AS_CHECK_PR_JUDGES], ids=["guard", "check-pr"])
@pytest.mark.parametrize("tenant", sorted(BUNDLE.tenants))
@pytest.mark.parametrize("role", ROLES)
def test_the_complete_bundle_allows_its_example_tenants_plain_requests(
    role: str, tenant: str, prices: Prices
) -> None:
    request = msgspec.convert(
        {"tenant": tenant, "role": role, "prompt": "Plan a CLI that counts words"}, TaskRequest
    )
    decision = evaluate(request, len(codec.encode(request)), BUNDLE, prices).decision
    assert decision.verdict == "allow", [v.message for v in decision.violations]


@pytest.mark.parametrize("prices", [AS_A_RUNNING_GUARD_JUDGES, AS_CHECK_PR_JUDGES], ids=["guard", "check-pr"])
def test_the_complete_bundle_allows_the_readme_s_own_example_requests(prices: Prices) -> None:
    requests = _readme_requests()
    assert requests, "the README's JSON request example was not found"
    for request in requests:
        decision = evaluate(request, len(codec.encode(request)), BUNDLE, prices).decision
        assert decision.verdict == "allow", [v.message for v in decision.violations]


# -- the tester example, run against a mesh ------------------------------------------------------------


def _tester_example() -> str:
    """The README's runnable tester example: the shell block that writes a test file and submits it."""
    found = [b for b in _blocks("sh") if "--role tester" in b and re.search(r" > \S+\.py$", b, re.M)]
    assert len(found) == 1, "the README should have one runnable tester example"
    return found[0]


async def _run_shell(script: str, cwd: Path, settings: Settings) -> tuple[int, list[str], str]:
    """Run `script` with `sh -e` as a user would, the CLI finding the mesh through MAESTRO_NATS_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MAESTRO_NATS_URL"] = str(settings.nats_url)
    process = await asyncio.create_subprocess_exec(
        "sh", "-e", "-c", script, cwd=cwd, env=env, stdout=PIPE, stderr=PIPE
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines(), err.decode()


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Client]:
    """The whole mesh in this process on a real nats-server, with the README's default settings."""
    async with AsyncExitStack() as stack:
        yield await open_mesh(settings, stack)


async def test_the_tester_example_succeeds_as_written(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    code, out, err = await _run_shell(_tester_example(), tmp_path, settings)
    assert code == 0, (out, err)
    task_id, state = out
    assert state == "succeeded"
    record = await mesh.get(task_id)
    assert record.role == "tester" and record.state == "succeeded"
    assert record.output.startswith("1 of 1 commands passed")


async def test_the_tester_example_exits_1_when_its_test_fails(
    mesh: Client, settings: Settings, tmp_path: Path
) -> None:
    # The README says how to make it fail: `== 7` for the right answer.
    script = _tester_example()
    assert "== 6" in script
    code, out, err = await _run_shell(script.replace("== 6", "== 7"), tmp_path, settings)
    assert code == 1, (out, err)
    assert out[-1].startswith("failed: 0 of 1 commands passed"), out


# -- the models example, run against a mesh that serves the models it names -------------------------------


def _models_example() -> tuple[dict[str, str], list[str]]:
    """The README's models example: the MAESTRO_ settings it starts Maestro with, and its maestro commands."""
    found = [b for b in _blocks("sh") if "--model" in b and "make run" in b]
    assert len(found) == 1, "the README should have one example of serving models"
    start, *commands = [re.sub(r"\s+#.*$", "", line) for line in found[0].splitlines() if line.strip()]
    assigned = dict(shlex.split(word)[0].split("=", 1) for word in re.findall(r"MAESTRO_\w+=\S+", start))
    return assigned, commands


async def test_the_models_example_bills_the_model_asked_for_and_refuses_the_others(tmp_path: Path) -> None:
    assigned, (served, unserved) = _models_example()
    configured = Settings.from_env(assigned)
    nats = start_nats_server(tmp_path / "jetstream", log_file=tmp_path / "nats-server.log")
    try:
        settings = Settings(
            nats_url=nats.url,
            data_dir=str(tmp_path / "maestro"),
            http_port=0,
            worker="readme",
            models=configured.models,
            pricing=configured.pricing,
        )
        async with AsyncExitStack() as stack:
            client = await open_mesh(settings, stack)
            code, out, err = await _run_shell(served, tmp_path, settings)
            assert code == 0 and out[-1] == "succeeded", (out, err)
            record = await client.get(out[0])
            model = re.search(r"--model (\S+)", served)
            assert model and record.usage is not None and record.usage.model == model.group(1)
            price = pricing.from_settings(settings).price(model.group(1))
            assert price is not None
            usage = record.usage
            assert record.cost_micro_usd == price.cost(usage.input_tokens, usage.output_tokens) > 0

            code, out, err = await _run_shell(unserved, tmp_path, settings)
            assert code == 1 and out[-1].startswith("rejected:"), (out, err)
            record = await client.get(out[0])
            assert record.violations == ["models.not-served"]
    finally:
        nats.stop()
