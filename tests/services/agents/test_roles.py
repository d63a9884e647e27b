"""Each role's work with the offline backend, without a server: plans that parse, patches that apply (checked
with git), tests that really run, reviews with the guard's findings, documents that update the README."""

from __future__ import annotations

import subprocess
from pathlib import Path

import msgspec
import pytest

from maestro import codec
from maestro.estimates import count_tokens
from maestro.policy.bundle import load_default, parse, with_tenant
from maestro.smoke import SAMPLE_PROJECT, project_files
from proto.v1 import ROLES, ContextFile, TaskRequest
from proto.v1.work import Review, TesterReport
from proto.v1.workflows import Plan
from services.agents import patches
from services.agents.backends import OfflineBackend
from services.agents.roles import RUNNERS, RoleResult
from services.agents.roles.changes import PATCH_FILE, carried_block, carried_diffs
from services.agents.sandbox import Sandbox

BACKEND = OfflineBackend()
SANDBOX = Sandbox(timeout_s=60)
PROJECT = project_files()


async def run(role: str, prompt: str = "Plan a CLI that counts words", **fields: object) -> RoleResult:
    request = TaskRequest(tenant="acme", role=role, prompt=prompt, **fields)  # type: ignore[arg-type]
    return await RUNNERS[request.role](request, BACKEND, SANDBOX)


def note(step: str, result: RoleResult) -> ContextFile:
    """What a workflow hands a step about a step it needs (services/orchestrator/workflows/template.py)."""
    return ContextFile(
        path=f".maestro/steps/{step}.md", content=f"# step {step}: succeeded\n\n{result.output}\n"
    )


def files_of(result: RoleResult) -> dict[str, str]:
    return {f.path: f.content for f in result.files}


def git_applies(files: list[ContextFile], patch: str, tmp_path: Path) -> dict[str, str]:
    """The files after `git apply` of `patch` on a fresh copy of `files` (the check fails the test first)."""
    root = tmp_path / "copy"
    for f in files:
        (root / f.path).parent.mkdir(parents=True, exist_ok=True)
        (root / f.path).write_text(f.content)
    (tmp_path / PATCH_FILE).write_text(patch)
    for args in (["--check"], []):
        done = subprocess.run(
            ["git", "apply", *args, str(tmp_path / PATCH_FILE)], cwd=root, capture_output=True
        )
        assert done.returncode == 0, done.stderr.decode()
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_every_role_has_a_runner() -> None:
    assert set(RUNNERS) == set(ROLES)


async def test_planner_returns_numbered_subtasks_and_reports_usage() -> None:
    result = await run("planner")
    assert result.ok and not result.files
    lines = result.output.splitlines()
    assert [line.split(". ", 1)[0] for line in lines] == [str(n) for n in range(1, len(lines) + 1)]
    assert "Plan a CLI that counts words" in lines[0] and "(scaffolder)" in lines[0]
    assert "(implementer; after 1)" in lines[1]
    assert result.usage.model == "offline" and result.usage.input_tokens > count_tokens("Plan a CLI")


async def test_a_planner_asked_to_expand_answers_a_plan_whose_commands_become_tester_subtasks() -> None:
    result = await run("planner", "Build a word counter\n$ make check", expand=True)
    plan = codec.decode_strict(Plan, result.output)
    roles = [s.role for s in plan.subtasks]
    assert roles == ["scaffolder", "implementer", "implementer", "tester", "reviewer", "doc-writer", "tester"]
    assert plan.subtasks[-1].commands == ["make check"] and plan.subtasks[-1].needs == []
    assert all(s.needs == [plan.subtasks[i].name] for i, s in enumerate(plan.subtasks[1:6]))


async def test_the_offline_backend_is_deterministic() -> None:
    assert await run("implementer", context=PROJECT) == await run("implementer", context=PROJECT)
    assert (await run("planner", "Something else")).output != (await run("planner")).output


async def test_the_implementer_changes_the_project_as_a_patch_that_git_applies(tmp_path: Path) -> None:
    result = await run("implementer", "Add word counts to textstats", context=PROJECT)
    assert result.ok, result.error
    made = files_of(result)
    assert set(made) == {
        "textstats/word_counts.py",
        "tests/test_word_counts.py",
        "textstats/__init__.py",
        PATCH_FILE,
    }
    # The package's own file was changed, not replaced: every line it had is still there, in order.
    before = next(f.content for f in PROJECT if f.path == "textstats/__init__.py")
    assert made["textstats/__init__.py"].startswith(before)
    after = git_applies(PROJECT, made[PATCH_FILE], tmp_path)
    assert {p: after[p] for p in made if p != PATCH_FILE} == {
        p: c for p, c in made.items() if p != PATCH_FILE
    }
    assert "M textstats/__init__.py" in result.output and "$ python -m pytest -q" in result.output


async def test_an_implementer_without_a_project_writes_a_module_and_its_test() -> None:
    result = await run("implementer", "Count words")
    assert result.ok
    assert sorted(files_of(result)) == [PATCH_FILE, "count_words.py", "tests/test_count_words.py"]


async def test_the_scaffolder_lays_out_a_package_beside_what_exists() -> None:
    result = await run(
        "scaffolder", "Word counter for logs", context=[ContextFile(path="README.md", content="# Mine\n")]
    )
    assert result.ok
    made = files_of(result)
    assert "README.md" not in made  # there is one: it is not rewritten
    assert {"pyproject.toml", "word_counter/__init__.py", "tests/test_word_counter.py"} <= set(made)
    assert 'name = "word-counter"' in made["pyproject.toml"]


async def test_the_tester_runs_pytest_on_the_changes_it_was_handed_and_counts_the_tests() -> None:
    implemented = await run("implementer", "Add word counts to textstats", context=PROJECT)
    result = await run(
        "tester",
        "Run the tests",
        context=[*PROJECT, note("implement", implemented)],
        commands=["python -m pytest -q -p no:cacheprovider"],
    )
    assert result.ok, result.error
    assert result.output.splitlines()[:3] == [
        "1 of 1 commands passed",
        "$ python -m pytest -q -p no:cacheprovider -> exit 0",
        "tests: 5 passed, 0 failed, 0 errored, 0 skipped",
    ]
    report = codec.decode(TesterReport, files_of(result)["test-report.json"])
    assert (report.passed, report.failed, report.errored, report.skipped) == (5, 0, 0, 0)
    assert "tests.test_word_counts::test_each_word_is_counted_case_insensitively" in {
        t.name for t in report.tests
    }
    # It passes the changes on to the steps after it.
    assert carried_diffs(result.output) == carried_diffs(implemented.output)


async def test_the_tester_names_the_failing_tests_and_keeps_the_output_tail() -> None:
    broken = ContextFile(path="tests/test_broken.py", content="def test_no():\n    assert 1 == 2\n")
    result = await run(
        "tester", "Run", context=[*PROJECT, broken], commands=["python -m pytest -q -p no:cacheprovider"]
    )
    assert not result.ok and result.failure == "test_failed"
    assert "tests: 3 passed, 1 failed, 0 errored, 0 skipped" in result.error
    assert "  failed: tests.test_broken::test_no: assert 1 == 2" in result.error
    assert "--- output of: python -m pytest" in result.error and "1 failed, 3 passed" in result.error


async def test_the_tester_reads_a_junit_report_any_command_leaves_in_the_workspace() -> None:
    report = (
        '<testsuite><testcase classname="suite" name="ok"/>'
        + '<testcase name="skip"><skipped/></testcase></testsuite>'
    )
    given = ContextFile(path="old.xml", content=report)  # a context file is not a report of this run
    result = await run(
        "tester", "Run", context=[given], commands=[f"mkdir -p out && echo '{report}' > out/junit.xml"]
    )
    assert result.ok, result.error
    assert result.output.splitlines()[2] == "tests: 1 passed, 0 failed, 0 errored, 1 skipped"
    tests = codec.decode(TesterReport, files_of(result)["test-report.json"]).tests
    assert [(t.name, t.outcome) for t in tests] == [("suite::ok", "passed"), ("skip", "skipped")]


async def test_the_tester_never_follows_a_link_or_waits_on_a_fifo_a_command_left_as_a_report(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "host.xml"
    outside.write_text('<testsuite><testcase name="from_the_host"/></testsuite>')
    made = f"mkfifo pipe.xml && ln -s {outside} link.xml && mkdir d && ln -s {tmp_path} d/up"
    result = await run("tester", "Run", commands=[made])
    assert result.ok, result.error
    assert codec.decode(TesterReport, files_of(result)["test-report.json"]).tests == []


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
    assert [f.path for f in result.files] == ["test-report.txt", "test-report.json"]


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


async def test_changes_that_do_not_apply_to_the_project_fail_the_step_for_good() -> None:
    stale = patches.file_diff("textstats/lines.py", "nothing like it\n", "something else\n")
    handed = ContextFile(path=".maestro/steps/implement.md", content=carried_block(stale))
    result = await run("tester", context=[*PROJECT, handed], commands=["true"])
    assert not result.ok and result.failure == "invalid_output"
    assert ".maestro/steps/implement.md do not apply" in result.error and "textstats/lines.py" in result.error


async def test_changes_cut_short_by_the_output_limit_fail_the_step_instead_of_being_left_out() -> None:
    implemented = await run("implementer", "Add word counts to textstats", context=PROJECT)
    cut = ContextFile(path=".maestro/steps/implement.md", content=implemented.output[:-400])
    result = await run("tester", context=[*PROJECT, cut], commands=["true"])
    assert not result.ok and result.failure == "invalid_output" and "were cut short" in result.error


async def test_the_reviewer_finds_the_guards_and_its_own_findings_on_the_change() -> None:
    implemented = await run("implementer", "Add word counts to textstats", context=PROJECT)
    gpl = ContextFile(path="vendored.py", content="# SPDX-License-Identifier: GPL-3.0-only\nx = 1  \n")
    handed = note("implement", implemented)
    extra = carried_block(patches.file_diff(gpl.path, None, gpl.content))
    result = await run(
        "reviewer",
        "Review the change",
        context=[*PROJECT, handed, ContextFile(path=".maestro/steps/vendor.md", content=extra)],
    )
    assert result.ok, result.error
    review = codec.decode(Review, files_of(result)["review.json"])
    assert review.verdict == "changes_requested"  # the guard denies a GPL header in generated code
    where = {(f.path, f.line, f.severity, f.rule) for f in review.findings}
    assert any(
        p == "vendored.py" and line == 1 and s == "error" and r.startswith("licenses.")
        for p, line, s, r in where
    )
    code = files_of(implemented)["textstats/word_counts.py"].splitlines()
    assert "TODO" in code[10] and ("textstats/word_counts.py", 11, "warning", "") in where
    assert ("vendored.py", 2, "note", "") in where  # trailing whitespace on an added line
    assert "textstats/lines.py" not in review.files  # only what the change added is reviewed
    assert result.output.splitlines()[1] == "Verdict: changes_requested"
    assert "- textstats/word_counts.py:11: warning: leftover TODO" in result.output
    assert codec.decode(Review, result.output.split("```json\n", 1)[1].split("```", 1)[0]) == review


async def test_a_clean_change_is_approved() -> None:
    implemented = await run("implementer", "Add word counts to textstats", context=PROJECT)
    fixed = implemented.output.replace(
        "+    # TODO: split on punctuation too, not only on whitespace\n",
        "+    # Whitespace separates words.\n",
    )
    result = await run(
        "reviewer", "Review", context=[*PROJECT, ContextFile(path=".maestro/steps/i.md", content=fixed)]
    )
    review = codec.decode(Review, files_of(result)["review.json"])
    assert (review.verdict, review.findings) == ("approve", [])


async def test_reviewer_without_files_says_so() -> None:
    result = await run("reviewer", "Review")
    assert result.ok and result.output.startswith("Nothing to review")


async def test_the_doc_writer_adds_a_section_to_the_readme_it_was_given(tmp_path: Path) -> None:
    implemented = await run("implementer", "Add word counts to textstats", context=PROJECT)
    result = await run(
        "doc-writer", "Word counts\n\nDocument them", context=[*PROJECT, note("implement", implemented)]
    )
    assert result.ok, result.error
    made = files_of(result)
    readme = next(f.content for f in PROJECT if f.path == "README.md")
    assert made["README.md"].startswith(readme)  # updated, not replaced
    assert "## Word counts" in made["README.md"] and "`textstats/word_counts.py`" in made["README.md"]
    # Its patch is of its own change, against the files as the implementer left them.
    assert "+## Word counts" in made[PATCH_FILE] and "a/textstats/word_counts.py" not in made[PATCH_FILE]
    given = [
        ContextFile(path=p, content=c)
        for p, c in patches.apply(
            {f.path: f.content for f in PROJECT}, carried_diffs(implemented.output)[0]
        ).items()
    ]
    assert git_applies(given, made[PATCH_FILE], tmp_path)["README.md"] == made["README.md"]


async def test_the_doc_writer_without_a_readme_writes_a_page() -> None:
    result = await run("doc-writer", "Word counter usage")
    assert result.ok
    assert sorted(files_of(result)) == [PATCH_FILE, "docs/word_counter.md"]
    assert files_of(result)["docs/word_counter.md"].startswith("# Word counter usage\n")


@pytest.mark.parametrize("role", ["planner", "implementer", "reviewer", "doc-writer"])
async def test_roles_read_the_sample_project(role: str) -> None:
    assert SAMPLE_PROJECT.is_dir() and {f.path for f in PROJECT} >= {"README.md", "textstats/__init__.py"}
    result = await run(role, "Add word counts to textstats", context=PROJECT)
    assert result.ok, result.error


async def test_the_reviewer_judges_by_the_bundle_as_the_task_s_tenant_sees_it() -> None:
    # The shipped bundle denies a GPL header; this one lets tenant acme take GPL code, and no one else.
    shipped = load_default()
    assert shipped.file is not None
    gpl_ok = parse(with_tenant(shipped.file, "acme", "licenses: {categories: {strong-copyleft: allow}}"))
    gpl = ContextFile(path="vendored.py", content="# SPDX-License-Identifier: GPL-3.0-only\nx = 1\n")
    carried = ContextFile(
        path=".maestro/steps/vendor.md", content=carried_block(patches.file_diff(gpl.path, None, gpl.content))
    )
    found = {}
    for tenant in ("acme", "other"):
        request = TaskRequest(
            tenant=tenant, role="reviewer", prompt="Review the change", context=[*PROJECT, carried]
        )
        result = await RUNNERS["reviewer"](request, BACKEND, SANDBOX, gpl_ok.as_seen_by(tenant))
        assert result.ok, result.error
        review = codec.decode(Review, files_of(result)["review.json"])
        found[tenant] = [
            f.rule for f in review.findings if f.path == "vendored.py" and f.rule.startswith("licenses.")
        ]
    assert found["acme"] == [] and found["other"] != []
