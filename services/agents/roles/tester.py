"""The tester: puts the project files (with the changes of the steps it needs) in a fresh workspace, runs
each command there, and reports exit codes and, where pytest or another JUnit XML producer ran, each test.

Every command runs with `PYTEST_ADDOPTS=--junitxml=.maestro-junit-<n>.xml` set in its shell, so pytest
writes its report into the workspace; any other JUnit XML report a command leaves there is read too.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import msgspec

from maestro.policy.bundle import Bundle
from proto.v1 import ContextFile, TaskRequest
from proto.v1.tasks import FailureKind
from proto.v1.work import CommandRun, JUnitCase, TesterReport
from services.agents.backends.base import Backend
from services.agents.roles import junit
from services.agents.roles.base import RoleResult
from services.agents.roles.changes import tree_or_failure
from services.agents.sandbox import CommandResult, Sandbox, WorkspaceError, workspace

REPORT_PATH = "test-report.txt"
JSON_REPORT_PATH = "test-report.json"
_JUNIT = ".maestro-junit-{n}.xml"
_TAIL_LINES = 20
_LISTED_TESTS = 50
_MAX_REPORTS = 64


def wrapped(command: str, n: int) -> str:
    """`command` as the sandbox runs it: after a line that has pytest write its JUnit report to the
    workspace (relative to where pytest starts; looked for anywhere in the workspace)."""
    return f"export PYTEST_ADDOPTS='--junitxml={_JUNIT.format(n=n)}'\n{command}"


def _tail(output: str) -> str:
    return "\n".join(output.rstrip().splitlines()[-_TAIL_LINES:])


def report_of(results: list[CommandResult], tests: list[JUnitCase]) -> TesterReport:
    """The structured report: each command's end (the output tail of a failed one) and the tests."""
    count = junit.counts(tests)
    runs = [
        CommandRun(
            command=r.command,
            exit_code=r.exit_code,
            timed_out=r.timed_out,
            tail="" if r.ok else _tail(r.output),
        )
        for r in results
    ]
    return TesterReport(commands=runs, tests=tests, **count)


def report(results: list[CommandResult], tests: list[JUnitCase] | None = None) -> str:
    """One line per command with its exit code, the test counts and the tests that did not pass, then the
    output tail of each command that failed."""
    if not results:
        return "no commands"
    passed = sum(r.ok for r in results)
    lines = [f"{passed} of {len(results)} commands passed"]
    for r in results:
        ending = f"exit {r.exit_code}"
        if r.timed_out:
            ending = f"timed out after {r.seconds:.1f}s ({ending})"
        lines.append(f"$ {r.command} -> {ending}")
    if tests:
        count = junit.counts(tests)
        lines.append("tests: " + ", ".join(f"{n} {kind}" for kind, n in count.items()))
        bad = [t for t in tests if t.outcome in ("failed", "errored")]
        for case in bad[:_LISTED_TESTS]:
            lines.append(
                f"  {case.outcome}: {case.name}"
                + (f": {case.message.splitlines()[0]}" if case.message else "")
            )
    for r in results:
        if not r.ok and r.output.strip():
            lines += ["", f"--- output of: {r.command}", _tail(r.output)]
    return "\n".join(lines)


def _report_bytes(path: Path) -> bytes | None:
    """The bytes of a regular file of at most junit.MAX_REPORT_BYTES, or None: a command wrote the
    workspace, so its path may be a symlink or a FIFO by the time it is read (never followed, never waited
    on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > junit.MAX_REPORT_BYTES:
            return None
        return file.read(junit.MAX_REPORT_BYTES + 1)


def _read_reports(root: Path, given: set[str]) -> list[JUnitCase]:
    """The test cases of the JUnit XML reports in the workspace that were not context files (at most
    _MAX_REPORTS of them; directories that are symlinks are not entered)."""
    found: list[JUnitCase] = []
    reports = 0
    for path in sorted(root.rglob("*.xml")):
        if path.relative_to(root).as_posix() in given or reports >= _MAX_REPORTS:
            continue
        data = _report_bytes(path)
        cases = junit.cases(data) if data is not None else None
        if cases is not None:
            reports += 1
            found += cases
    return found


async def _run_all(
    request: TaskRequest, files: list[ContextFile], sandbox: Sandbox
) -> tuple[list[CommandResult], list[JUnitCase]]:
    results: list[CommandResult] = []
    async with workspace(files) as root:
        for n, command in enumerate(request.commands, 1):
            ran = await sandbox.run(wrapped(command, n), root)
            results.append(CommandResult(command, ran.exit_code, ran.output, ran.seconds, ran.timed_out))
        tests = await asyncio.to_thread(_read_reports, root, {f.path for f in files})
    return results, tests


async def run(
    request: TaskRequest, backend: Backend, sandbox: Sandbox, bundle: Bundle | None = None
) -> RoleResult:
    """Run every command in order (all of them, even after a failure); ok only when each exits 0."""
    tree = tree_or_failure(request)
    if isinstance(tree, RoleResult):
        return tree
    results: list[CommandResult] = []
    tests: list[JUnitCase] = []
    try:
        if request.commands:
            results, tests = await _run_all(request, [*tree.notes, *tree.context()], sandbox)
    except WorkspaceError as exc:
        completion = await backend.complete("tester", request.prompt, request.model)
        return RoleResult(ok=False, output="", usage=completion.usage, error=str(exc))
    text = report(results, tests)
    # The exit codes (not the timings) go to the backend, so the usage of a rerun is the same.
    summary = "\n".join(f"$ {r.command} -> exit {r.exit_code}" for r in results) or "no commands"
    completion = await backend.complete("tester", f"{request.prompt}\n\n{summary}", request.model)
    usage = completion.usage
    failed = [r for r in results if not r.ok]
    if failed:
        # A command that only ran out of time (a hung suite, a slow network) may pass when run again; one
        # that exited non-zero would fail the same way.
        kind: FailureKind = "timeout" if all(r.timed_out for r in failed) else "test_failed"
        return RoleResult(ok=False, output=text, usage=usage, error=text, failure=kind)
    carried = tree.carried()
    output = f"{text}\n\n{carried}" if carried else text
    if not results:
        return RoleResult(ok=True, output=output, usage=usage)
    structured = msgspec.json.format(msgspec.json.encode(report_of(results, tests))).decode() + "\n"
    files = [
        ContextFile(path=REPORT_PATH, content=text + "\n"),
        ContextFile(path=JSON_REPORT_PATH, content=structured),
    ]
    return RoleResult(ok=True, output=output, usage=usage, files=files)
