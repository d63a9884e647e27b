"""The files a unified diff changed, as check-pr judges them: each file's text at the head commit and the
numbers of the lines the diff added (any amount of context, as GitHub's `.diff` has three lines of it)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from maestro.policy.check_pr import ChangedFile

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def _new_path(line: str) -> str | None:
    target = line[4:].rstrip("\t").rstrip()
    if target == "/dev/null":
        return None
    if len(target) >= 2 and target[0] == target[-1] == '"':
        target = target[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        target = target.encode("latin-1").decode("utf-8", "replace")
    return target[2:] if target.startswith("b/") else target


def added_lines(diff: str) -> dict[str, set[int]]:
    """The added line numbers (1-based, in the new file) of each file the diff adds to."""
    added: dict[str, set[int]] = {}
    current: set[int] | None = None
    number = 0
    in_hunk = False
    for line in diff.splitlines():
        if line.startswith("diff --git "):
            current, in_hunk = None, False
        elif not in_hunk and line.startswith("+++ "):
            path = _new_path(line)
            current = added.setdefault(path, set()) if path is not None else None
        elif line.startswith("@@"):
            hunk = _HUNK.match(line)
            in_hunk = hunk is not None
            number = int(hunk.group(1)) if hunk else 0
        elif in_hunk and current is not None:
            if line.startswith("+"):
                current.add(number)
                number += 1
            elif line.startswith(" ") or line == "":
                number += 1
            # `-` lines and `\ No newline at end of file` take no line of the new file
    return added


def changed_files(diff: str, files: Mapping[str, str]) -> list[ChangedFile]:
    """check-pr's view of the change: every file the diff adds lines to that is among `files` (the text
    files at the head commit), in path order."""
    return [
        ChangedFile(path, files[path], frozenset(lines))
        for path, lines in sorted(added_lines(diff).items())
        if lines and path in files
    ]
