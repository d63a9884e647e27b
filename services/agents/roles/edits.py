"""What the roles that change files share (scaffolder, implementer, doc-writer): ask the model for
FileChanges, apply them to the project files, check that the patch of inputs to result applies to the
inputs and gives the result (services/agents/patches.py), report.

A change to a file that exists is a diff of it: an answer that rewrites a file with none of its lines
(a file of some size replaced by unrelated content) is sent back in the repair round, never applied.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from maestro.policy.bundle import Bundle
from proto.v1 import ContextFile, Role, TaskRequest
from proto.v1.work import FileChanges
from services.agents import patches
from services.agents.backends import structured
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult, invalid
from services.agents.roles.changes import (
    NOTES_PREFIX,
    PATCH_FILE,
    Tree,
    prompt_of,
    result_of,
    tree_or_failure,
)
from services.agents.roles.policy import judge_commands, shipped_bundle

KEPT_LINES_MIN = 3
"""A rewrite of a file with at least this many non-blank lines must keep one of them."""
DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
"""What the doc-writer may change, besides anything under docs/."""


def changed_files(files: Mapping[str, str], answer: FileChanges) -> dict[str, str]:
    """`files` with the answer's diff applied, then its whole files written; raises patches.PatchError."""
    after = patches.apply(files, answer.diff) if answer.diff.strip() else dict(files)
    for file in answer.files:
        after[file.path] = file.content
    return after


def docs_only(path: str) -> str | None:
    """Why the doc-writer may not change `path` (it is no documentation), or None."""
    if path.startswith("docs/") or path.lower().endswith(DOC_SUFFIXES):
        return None
    return f"{path}: the doc-writer changes documentation only (docs/, {', '.join(DOC_SUFFIXES)})"


def problem(
    files: Mapping[str, str], answer: FileChanges, may_change: Callable[[str], str | None] | None = None
) -> str | None:
    """What makes an answer unusable on `files`, or None: a diff that does not apply, a note written, a
    path `may_change` refuses (it says why), a file rewritten with unrelated content, no change at all, or
    Python that does not compile."""
    try:
        after = changed_files(files, answer)
    except patches.PatchError as exc:
        return f"the diff does not apply to the context files: {exc}"
    for path in sorted(set(after) | set(files)):
        if after.get(path) == files.get(path):
            continue
        if path.startswith(NOTES_PREFIX):
            return f"{path}: files under {NOTES_PREFIX} are the workflow's notes, not the project's"
        refused = may_change(path) if may_change is not None else None
        if refused is not None:
            return refused
    for file in answer.files:
        old = files.get(file.path)
        if old is not None and _unrelated(old, file.content):
            return (
                f"{file.path}: the answer replaces this file with content that keeps none of its lines; "
                "change an existing file with a diff, or keep what it has"
            )
    if after == dict(files):
        return "the answer changes no file"
    for path, text in sorted(after.items()):
        if path.endswith(".py") and text != files.get(path):
            try:
                compile(text, path, "exec", dont_inherit=True)
            except (SyntaxError, ValueError) as exc:
                line, why = getattr(exc, "lineno", 0) or 0, getattr(exc, "msg", exc)
                return f"{path}:{line}: {why} (the code does not compile)"
    return None


def _unrelated(old: str, new: str) -> bool:
    kept = {line.strip() for line in old.splitlines() if line.strip()}
    return len(kept) >= KEPT_LINES_MIN and not kept & {line.strip() for line in new.splitlines()}


def _summary(answer: FileChanges, tree: Tree, after: Mapping[str, str]) -> list[str]:
    lines = [answer.summary.strip() or "Changed the files.", ""]
    for path in sorted(set(tree.files) | set(after)):
        old, new = tree.files.get(path), after.get(path)
        if old == new:
            continue
        mark = "A" if old is None else "D" if new is None else "M"
        lines.append(f"{mark} {path}")
    return lines


async def run(
    request: TaskRequest,
    backend: Backend,
    role: Role,
    system: str,
    may_change: Callable[[str], str | None] | None = None,
    bundle: Bundle | None = None,
) -> RoleResult:
    """Ask for changes to the project files (with the changes of the steps it needs), apply them, and
    return the changed files and `changes.patch` (checked to apply to the inputs); `may_change` says why a
    path may not be changed (None: any may). Runs nothing: commands the model proposes are judged (by
    `bundle`, as the task's tenant sees it; None: the shipped one) and listed, for a tester step to run."""
    tree = tree_or_failure(request)
    if isinstance(tree, RoleResult):
        return tree
    try:
        answer = await structured.ask(
            backend,
            role,
            prompt_of(request.prompt, tree),
            request.model,
            FileChanges,
            system=system,
            check=functools.partial(problem, tree.files, may_change=may_change),
        )
    except structured.InvalidAnswer as exc:
        return invalid(str(exc), exc.usage)
    after = changed_files(tree.files, answer.value)
    result = result_of(tree, after)
    judged = judge_commands(answer.value.commands, role, bundle or shipped_bundle())
    lines = _summary(answer.value, tree, after)
    if judged.allowed:
        lines += [
            "",
            "Suggested checks (the commands policy allows them):",
            *(f"$ {c}" for c in judged.allowed),
        ]
    if judged.findings:
        lines += ["", "Dropped commands:", *(f"- {f.message} [{f.rule}]" for f in judged.findings)]
    output = "\n".join(lines) + "\n\n" + result.carried
    files = [*result.files, ContextFile(path=PATCH_FILE, content=result.patch)]
    return RoleResult(ok=True, output=output, usage=answer.usage, files=files)
