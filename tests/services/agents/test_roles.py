"""Each role's output shape with the offline backend, without a server."""

from __future__ import annotations

import msgspec
import pytest

from proto.v1 import ROLES, ContextFile, TaskRequest
from services.agents.backends import OfflineBackend
from services.agents.backends.offline import count_tokens
from services.agents.roles import RUNNERS, RoleResult
from services.agents.roles.base import slug, unfenced
from services.agents.roles.planner import steps
from services.agents.sandbox import Sandbox

BACKEND = OfflineBackend()
SANDBOX = Sandbox(timeout_s=10)


async def run(role: str, prompt: str = "Plan a CLI that counts words", **fields: object) -> RoleResult:
    request = TaskRequest(tenant="acme", role=role, prompt=prompt, **fields)  # type: ignore[arg-type]
    return await RUNNERS[request.role](request, BACKEND, SANDBOX)


def test_every_role_has_a_runner() -> None:
    assert set(RUNNERS) == set(ROLES)


async def test_planner_returns_numbered_steps_and_reports_usage() -> None:
    result = await run("planner")
    assert result.ok and not result.files
    lines = result.output.splitlines()
    assert len(lines) >= 3
    assert [line.split(". ", 1)[0] for line in lines] == [str(n) for n in range(1, len(lines) + 1)]
    assert "Plan a CLI that counts words" in lines[0]
    assert result.usage.model == "offline"
    assert result.usage.input_tokens == count_tokens("Plan a CLI that counts words")
    assert result.usage.output_tokens == count_tokens(result.output)


async def test_the_offline_backend_is_deterministic() -> None:
    assert await run("planner") == await run("planner")
    assert (await run("planner", "Something else")).output != (await run("planner")).output


def test_plan_steps_accept_both_numbering_styles() -> None:
    assert steps("Intro\n1. first\n2) second\n  3.   third  \nnot a step") == ["first", "second", "third"]


async def test_scaffolder_lays_out_a_project_named_after_the_prompt() -> None:
    result = await run("scaffolder", "Word counter for logs")
    assert result.ok
    paths = [f.path for f in result.files]
    assert paths[:3] == ["README.md", "pyproject.toml", "word_counter_for/__init__.py"]
    assert all(f"- {p}" in result.output for p in paths)
    pyproject = next(f for f in result.files if f.path == "pyproject.toml").content
    assert 'name = "word-counter-for"' in pyproject


async def test_implementer_writes_one_file_of_code_that_compiles() -> None:
    result = await run("implementer", "Count words")
    assert result.ok
    [file] = result.files
    assert file.path == "count_words.py"
    compile(file.content, file.path, "exec")
    assert result.output.startswith("Wrote count_words.py")


async def test_implementer_writes_into_the_python_file_it_was_given() -> None:
    result = await run("implementer", context=[ContextFile(path="README.md"), ContextFile(path="src/wc.py")])
    assert [f.path for f in result.files] == ["src/wc.py"]


async def test_tester_without_commands_passes() -> None:
    result = await run("tester")
    assert result.ok and result.output == "no commands" and not result.files


async def test_tester_runs_commands_against_the_context_files() -> None:
    result = await run(
        "tester",
        context=[ContextFile(path="pkg/data.txt", content="hello\n")],
        commands=["test -f pkg/data.txt", "grep -q hello pkg/data.txt"],
    )
    assert result.ok, result.error
    assert result.output.splitlines()[:3] == [
        "2 of 2 commands passed",
        "$ test -f pkg/data.txt -> exit 0",
        "$ grep -q hello pkg/data.txt -> exit 0",
    ]
    assert [f.path for f in result.files] == ["test-report.txt"]


async def test_tester_reports_a_failing_command_exit_code_and_fails() -> None:
    result = await run("tester", commands=["true", "echo broken >&2; exit 3", "true"])
    assert not result.ok
    assert result.output.splitlines()[:4] == [
        "2 of 3 commands passed",
        "$ true -> exit 0",
        "$ echo broken >&2; exit 3 -> exit 3",
        "$ true -> exit 0",
    ]
    assert "broken" in result.error and "exit 3" in result.error
    assert result.failure == "test_failed"  # the same tests would fail again: no retry


async def test_a_tester_whose_commands_only_ran_out_of_time_may_be_retried() -> None:
    request = TaskRequest(tenant="acme", role="tester", prompt="p", commands=["true", "sleep 5"])
    result = await RUNNERS["tester"](request, BACKEND, Sandbox(timeout_s=0.2))
    assert not result.ok and result.failure == "timeout" and "timed out" in result.error
    mixed = TaskRequest(tenant="acme", role="tester", prompt="p", commands=["exit 1", "sleep 5"])
    assert (await RUNNERS["tester"](mixed, BACKEND, Sandbox(timeout_s=0.2))).failure == "test_failed"


async def test_tester_refuses_context_paths_outside_the_workspace() -> None:
    escape = ContextFile(path="escape.txt")
    msgspec.structs.force_setattr(escape, "path", "../escape.txt")  # the type refuses it; the tester too
    result = await run("tester", context=[escape], commands=["true"])
    assert not result.ok and "inside the workspace" in result.error
    assert result.failure == "error"


async def test_reviewer_counts_lines_and_lists_findings() -> None:
    files = [
        ContextFile(path="clean.py", content="x = 1\ny = 2\n"),
        ContextFile(path="messy.py", content="# TODO: fix\n" + "z" * 120 + "\nend  "),
    ]
    result = await run("reviewer", "Review this change", context=files)
    assert result.ok
    lines = result.output.splitlines()
    assert lines[:3] == ["Reviewed 2 files (5 lines)", "- clean.py: 2 lines", "- messy.py: 3 lines"]
    assert "Findings (4):" in lines
    for finding in (
        "- messy.py:1: leftover TODO",
        "- messy.py:2: line is 120 characters (over 110)",
        "- messy.py:3: trailing whitespace",
        "- messy.py: no newline at end of file",
    ):
        assert finding in lines
    assert lines[-1].startswith("Summary: ")


async def test_reviewer_without_files_says_so() -> None:
    result = await run("reviewer", "Review")
    assert result.ok and result.output.startswith("Nothing to review")


async def test_doc_writer_writes_a_markdown_doc() -> None:
    result = await run("doc-writer", "Word counter usage")
    assert result.ok
    assert result.output.startswith("# Word counter usage\n")
    assert "## Usage" in result.output
    assert [(f.path, f.content) for f in result.files] == [("docs/word_counter_usage.md", result.output)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("Count the words!", "count_the_words"), ("", "task"), ("42 things", "p_42_things")],
)
def test_slug_is_an_identifier(prompt: str, expected: str) -> None:
    assert slug(prompt) == expected
    assert expected.isidentifier()


def test_unfenced_takes_the_code_out_of_a_fence() -> None:
    assert unfenced("```python\nx = 1\n```") == "x = 1\n"
    assert unfenced("x = 1\n") == "x = 1\n"
