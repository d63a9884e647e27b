"""The files a role works on, and how changes travel from step to step (pure, no I/O).

A task's context holds the project's files and, in a workflow, one note per step it needs
(`.maestro/steps/<name>.md`, that step's output). A role that changes files ends its output with the
diff from the project's files as given to the files it left, in a fenced ```diff block under
CARRIED_HEADING; a later step that needs it applies that diff to the same project files, so the changes
of a chain reach its last step through the outputs alone. Roles that change nothing (tester, reviewer)
pass the block they received on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from proto.v1 import ContextFile, TaskRequest, Usage
from proto.v1.tasks import workspace_path_problem
from services.agents import patches
from services.agents.backends import structured
from services.agents.roles.base import RoleResult, invalid
from services.agents.sandbox import WorkspaceError

NOTES_PREFIX = ".maestro/"
"""Context files under it are notes from the workflow (what needed steps said), not project files."""
PATCH_FILE = "changes.patch"
"""The artifact of a role that changed files: the diff of its inputs to its result."""
CARRIED_HEADING = "## Changes since the context files"
_CARRIED = re.compile(rf"^{re.escape(CARRIED_HEADING)}\n+```diff\n(.*?)^```[ \t]*$", re.M | re.S)


class CarriedChangesError(ValueError):
    """The changes a needed step carried do not apply to this task's project files."""


@dataclass(frozen=True)
class Tree:
    """The project files a role starts from: as the context gives them (`base`), and with the changes of
    the steps it needs applied (`files`)."""

    base: dict[str, str]
    files: dict[str, str]
    notes: list[ContextFile] = field(default_factory=list)
    """What the steps it needs said (their outputs), as the workflow handed them over."""

    def context(self) -> list[ContextFile]:
        """`files` as context files, in path order."""
        return [ContextFile(path=p, content=c) for p, c in sorted(self.files.items())]

    def carried(self) -> str:
        """The output block that passes on the changes it received ("" when there are none)."""
        return carried_block(patches.diff(self.base, self.files))


def carried_block(diff: str) -> str:
    """The block of an output that carries `diff` to the steps that need it ("" for no diff)."""
    return f"{CARRIED_HEADING}\n\n```diff\n{diff}```\n" if diff else ""


def carried_diffs(text: str) -> list[str]:
    """The diffs carried in an output (or a note holding one)."""
    return _CARRIED.findall(text)


def tree_of(request: TaskRequest) -> Tree:
    """The task's project files, and those with every needed step's changes applied (the later note wins
    a file two of them changed differently).

    Raises CarriedChangesError naming the note whose changes do not apply, WorkspaceError for a context
    path that would leave the workspace (the type refuses one; checked again for whatever built it)."""
    for file in request.context:
        if workspace_path_problem(file.path) is not None:
            raise WorkspaceError(f"context file path must stay inside the workspace: {file.path!r}")
    base = {f.path: f.content for f in request.context if not f.path.startswith(NOTES_PREFIX)}
    notes = [f for f in request.context if f.path.startswith(NOTES_PREFIX)]
    files = dict(base)
    for note in notes:
        found = carried_diffs(note.content)
        if note.content.count(CARRIED_HEADING) > len(found):
            # An output is cut at its size limit: what was carried is incomplete, and so would the files be.
            raise CarriedChangesError(
                f"the changes carried in {note.path} were cut short (too large an output)"
            )
        for diff in found:
            try:
                changed = patches.apply(base, diff)
            except patches.PatchError as exc:
                raise CarriedChangesError(f"the changes carried in {note.path} do not apply: {exc}") from None
            files = _merged(base, files, changed)
    return Tree(base=base, files=files, notes=notes)


def tree_or_failure(request: TaskRequest) -> Tree | RoleResult:
    """tree_of(request), or the failure of the task when its context cannot be worked on: changes carried
    that do not apply would fail the same way again (`invalid_output`); a bad path is an `error`."""
    try:
        return tree_of(request)
    except CarriedChangesError as exc:
        return invalid(str(exc), Usage(model="none"))
    except WorkspaceError as exc:
        return RoleResult(ok=False, output="", usage=Usage(model="none"), error=str(exc))


def prompt_of(prompt: str, tree: Tree) -> str:
    """A role's prompt for the model: the task's, what the steps it needs said (their diffs left out: they
    are applied), then the project files as they stand, each after a `--- file:` line."""
    notes = []
    for note in tree.notes:
        text = note.content
        for diff in carried_diffs(text):
            text = text.replace(diff, "(applied to the files below)\n")
        notes.append(ContextFile(path=note.path, content=text))
    return structured.files_prompt(prompt, [*notes, *tree.context()])


def _merged(base: Mapping[str, str], files: dict[str, str], changed: Mapping[str, str]) -> dict[str, str]:
    merged = dict(files)
    for path in set(base) | set(changed):
        if changed.get(path) != base.get(path):
            if path in changed:
                merged[path] = changed[path]
            else:
                merged.pop(path, None)
    return merged


@dataclass(frozen=True)
class Result:
    """What a change did: its patch (inputs → result), the files it changed, and the block to carry on."""

    patch: str
    files: list[ContextFile]
    carried: str

    @property
    def changed_paths(self) -> list[str]:
        """The paths the change created or rewrote, in order."""
        return [f.path for f in self.files]


def result_of(tree: Tree, after: Mapping[str, str]) -> Result:
    """The patch from the tree's files to `after`, checked to apply to them and give `after` exactly; the
    files it changed; and the carried block of every change since the project files.

    Raises patches.PatchError if the patch does not reproduce `after` (a bug here, never a model's)."""
    patch = patches.diff(tree.files, after)
    if patch and patches.apply(tree.files, patch) != dict(after):
        raise patches.PatchError("the patch does not reproduce the changed files")
    files = [ContextFile(path=p, content=after[p]) for p in sorted(after) if after[p] != tree.files.get(p)]
    return Result(patch=patch, files=files, carried=carried_block(patches.diff(tree.base, after)))
