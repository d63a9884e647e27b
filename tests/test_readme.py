"""The README's examples, run: its links, its commands, its policy bundle and its tester example."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from maestro import codec
from maestro.settings import Settings
from proto.v1 import TaskRequest
from services.agents.backends import OfflineBackend
from services.agents.sandbox import Sandbox
from services.guard import bundle
from services.guard.engine import Prices, evaluate

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
    named = set(re.findall(r"\bMAESTRO_[A-Z0-9_]*[A-Z0-9]\b", README))
    assert named - settings == set()


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
