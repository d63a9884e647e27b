"""The agents' chain on the sample project, offline, through the whole mesh: planner -> implementer -> tester
(pytest really runs on the implementer's change) -> reviewer (findings) -> doc-writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from maestro import codec, topics
from maestro.client import Client
from maestro.smoke import CHAIN, SAMPLE_PROJECT, agent_chain, chain_summary, project_files
from proto.v1 import TaskRecord
from proto.v1.work import Review, TesterReport
from proto.v1.workflows import step_task_id


async def _artifacts(client: Client, record: TaskRecord) -> dict[str, str]:
    """The task's stored files, by their path in the workspace."""
    store = await client.bus.js.object_store(topics.STORE_ARTIFACTS)
    prefix = f"{record.tenant}/{record.id}/"
    found = {}
    for ref in record.artifacts:
        stored = await store.get(ref.name)
        assert stored.data is not None
        found[ref.name.removeprefix(prefix)] = stored.data.decode()
    return found


async def _git_apply(patch: str, root: Path) -> None:
    """`git apply --check`, then `git apply`, of `patch` in `root`; fails the test if either fails."""
    (root.parent / "changes.patch").write_text(patch)
    for args in (["--check"], []):
        process = await asyncio.create_subprocess_exec(
            "git",
            "apply",
            *args,
            str(root.parent / "changes.patch"),
            cwd=root,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        assert process.returncode == 0, err.decode()


async def test_the_chain_plans_implements_tests_reviews_and_documents_the_sample_project(
    mesh: Client, tmp_path: Path
) -> None:
    workflow = msgspec.structs.replace(agent_chain("acme"), id="wf-agent-chain")
    await mesh.run_workflow(workflow)

    record = await mesh.wait_workflow("wf-agent-chain", timeout=90)

    assert record.state == "succeeded", record
    assert [s.name for s in record.steps] == list(CHAIN) and {s.state for s in record.steps} == {"succeeded"}
    tasks = {name: await mesh.get(step_task_id(record.id, name)) for name in CHAIN}
    assert "(implementer" in tasks["plan"].output and "(tester" in tasks["plan"].output

    # The implementer's patch applies to the project as shipped (checked by git) and changes, not replaces.
    implemented = await _artifacts(mesh, tasks["implement"])
    project = tmp_path / "project"
    for file in project_files():
        (project / file.path).parent.mkdir(parents=True, exist_ok=True)
        (project / file.path).write_text(file.content)
    await _git_apply(implemented["changes.patch"], project)
    for path in ("textstats/word_counts.py", "tests/test_word_counts.py", "textstats/__init__.py"):
        assert (project / path).read_text() == implemented[path]
    assert implemented["textstats/__init__.py"].startswith(
        (SAMPLE_PROJECT / "textstats/__init__.py").read_text()
    )

    # pytest really ran on the implementer's change: the project's 3 tests and the 2 it added.
    assert "tests: 5 passed, 0 failed, 0 errored, 0 skipped" in tasks["test"].output.splitlines()
    report = codec.decode(TesterReport, (await _artifacts(mesh, tasks["test"]))["test-report.json"])
    assert (report.passed, report.failed, report.errored) == (5, 0, 0)
    assert "tests.test_word_counts::test_no_words_count_nothing" in {t.name for t in report.tests}
    assert report.commands[0].command == "python -m pytest -q" and report.commands[0].exit_code == 0

    # The reviewer saw the change (not the files it did not touch) and placed its findings.
    review = codec.decode(Review, (await _artifacts(mesh, tasks["review"]))["review.json"])
    assert review.verdict == "approve" and review.policy_version
    assert review.files == ["tests/test_word_counts.py", "textstats/__init__.py", "textstats/word_counts.py"]
    todo = next(
        n for n, line in enumerate(implemented["textstats/word_counts.py"].splitlines(), 1) if "TODO" in line
    )
    assert [(f.path, f.line, f.severity) for f in review.findings] == [
        ("textstats/word_counts.py", todo, "warning")
    ]
    assert f"- textstats/word_counts.py:{todo}: warning: leftover TODO" in tasks["review"].output

    # The doc-writer updated the README it was handed (through the chain), as a patch of the files it saw.
    documented = await _artifacts(mesh, tasks["docs"])
    readme = documented["README.md"]
    assert readme.startswith((SAMPLE_PROJECT / "README.md").read_text())
    assert "## Word counts" in readme and "`textstats/word_counts.py`" in readme
    await _git_apply(documented["changes.patch"], project)
    assert (project / "README.md").read_text() == readme

    assert chain_summary(tasks) == "5 passed, 0 failed, 0 errored, 0 skipped; review: approve, 1 findings"
    assert record.cost_micro_usd == sum(t.cost_micro_usd for t in tasks.values()) > 0
