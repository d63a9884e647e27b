"""The tester: puts the context files in a fresh workspace, runs each command there, reports exit codes."""

from __future__ import annotations

from proto.v1 import ContextFile, TaskRequest
from proto.v1.tasks import FailureKind
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult
from services.agents.sandbox import CommandResult, Sandbox, WorkspaceError, workspace

REPORT_PATH = "test-report.txt"
_TAIL_LINES = 20


def report(results: list[CommandResult]) -> str:
    """One line per command with its exit code, then the output tail of each command that failed."""
    if not results:
        return "no commands"
    passed = sum(r.ok for r in results)
    lines = [f"{passed} of {len(results)} commands passed"]
    for r in results:
        ending = f"exit {r.exit_code}"
        if r.timed_out:
            ending = f"timed out after {r.seconds:.1f}s ({ending})"
        lines.append(f"$ {r.command} -> {ending}")
    for r in results:
        if not r.ok and r.output.strip():
            tail = r.output.rstrip().splitlines()[-_TAIL_LINES:]
            lines += ["", f"--- output of: {r.command}", *tail]
    return "\n".join(lines)


async def run(request: TaskRequest, backend: Backend, sandbox: Sandbox) -> RoleResult:
    """Run every command in order (all of them, even after a failure); ok only when each exits 0."""
    results: list[CommandResult] = []
    try:
        if request.commands:
            async with workspace(request.context) as root:
                for command in request.commands:
                    results.append(await sandbox.run(command, root))
    except WorkspaceError as exc:
        completion = await backend.complete("tester", request.prompt, request.model)
        return RoleResult(ok=False, output="", usage=completion.usage, error=str(exc))
    text = report(results)
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
    files = [ContextFile(path=REPORT_PATH, content=text + "\n")] if results else []
    return RoleResult(ok=True, output=text, usage=usage, files=files)
