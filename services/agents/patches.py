"""Unified diffs between two sets of files: write one (git's format), read one, apply one (pure, no I/O).

A file's text is a str; a set of files is a mapping of workspace paths to text. A diff this module writes
applies with `git apply` and `patch -p1` too; one it reads may come from a model, so applying is strict
about content (every context and removed line must match exactly) and lenient only about where a hunk
sits (it is looked for nearest the line its header names, as `patch` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher

CONTEXT_LINES = 3
_NO_NEWLINE = "\\ No newline at end of file"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
DEV_NULL = "/dev/null"

Files = Mapping[str, str]


class PatchError(ValueError):
    """A diff that does not parse, or does not apply to the files it is applied to; the text says where."""


def _lines(text: str) -> list[str]:
    """`text` cut after each `\\n` (only there: a `\\r` or form feed stays inside its line)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _range(start: int, stop: int) -> str:
    # As difflib and diff write it: `start,count`, `start` alone for one line, the line before for none.
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start if not length else start + 1},{length}"


def _rendered(prefix: str, line: str) -> list[str]:
    if line.endswith("\n"):
        return [prefix + line[:-1]]
    return [prefix + line, _NO_NEWLINE]


def file_diff(path: str, old: str | None, new: str | None) -> str:
    """The diff of one file (None: it does not exist on that side), or "" when both sides are the same."""
    if old == new:
        return ""
    a, b = _lines(old or ""), _lines(new or "")
    out = [f"diff --git a/{path} b/{path}"]
    if old is None:
        out += ["new file mode 100644", f"--- {DEV_NULL}", f"+++ b/{path}"]
    elif new is None:
        out += ["deleted file mode 100644", f"--- a/{path}", f"+++ {DEV_NULL}"]
    else:
        out += [f"--- a/{path}", f"+++ b/{path}"]
    for group in SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(CONTEXT_LINES):
        first, last = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for line in a[i1:i2]:
                    out += _rendered(" ", line)
                continue
            for line in a[i1:i2]:
                out += _rendered("-", line)
            for line in b[j1:j2]:
                out += _rendered("+", line)
    return "\n".join(out) + "\n"


def diff(before: Files, after: Files) -> str:
    """The diff that turns `before` into `after`: one section per file that differs, in path order."""
    paths = sorted(set(before) | set(after))
    return "".join(file_diff(p, before.get(p), after.get(p)) for p in paths)


@dataclass
class Hunk:
    """One hunk: where it starts in the old file, and its lines (each with its ` `, `-` or `+`)."""

    old_start: int
    new_start: int
    lines: list[str] = field(default_factory=list)
    """Each line with its prefix and its line break (none for a line a `\\ No newline` note follows)."""

    def old(self) -> list[str]:
        """The lines the hunk expects in the old file."""
        return [line[1:] for line in self.lines if line[0] in " -"]

    def new(self) -> list[str]:
        """The lines the hunk leaves in the new file."""
        return [line[1:] for line in self.lines if line[0] in " +"]


@dataclass
class FilePatch:
    """The part of a diff about one file: its old and new path (None: /dev/null) and its hunks."""

    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The file's path on the side that exists (the new one, unless the file is deleted)."""
        path = self.new_path or self.old_path
        assert path is not None
        return path

    def added(self) -> set[int]:
        """The 1-based numbers of the lines the patch adds, in the new file."""
        found: set[int] = set()
        for hunk in self.hunks:
            number = hunk.new_start if hunk.new_start else 1
            for line in hunk.lines:
                if line[0] == "+":
                    found.add(number)
                if line[0] in " +":
                    number += 1
        return found


def _path(header: str) -> str | None:
    name = header.split("\t", 1)[0].strip()
    if name == DEV_NULL:
        return None
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse(text: str) -> list[FilePatch]:
    """The files of a unified diff and their hunks; raises PatchError for a diff that does not parse."""
    rows = text.split("\n")
    patches: list[FilePatch] = []
    i = 0
    while i < len(rows):
        row = rows[i]
        if not (row.startswith("--- ") and i + 1 < len(rows) and rows[i + 1].startswith("+++ ")):
            i += 1
            continue
        current = FilePatch(_path(row[4:]), _path(rows[i + 1][4:]))
        if current.old_path is None and current.new_path is None:
            raise PatchError(f"line {i + 1}: a file section with /dev/null on both sides")
        patches.append(current)
        i += 2
        while i < len(rows) and (match := _HUNK.match(rows[i])):
            i = _read_hunk(rows, i, match, current)
    if not patches:
        raise PatchError("no file sections (`--- a/path` then `+++ b/path`) in the diff")
    return patches


def _read_hunk(rows: list[str], i: int, match: re.Match[str], into: FilePatch) -> int:
    """Read the hunk whose header is rows[i] into `into`; the index of the row after it."""
    old_left = int(match.group(2) or "1")
    new_left = int(match.group(4) or "1")
    hunk = Hunk(int(match.group(1)), int(match.group(3)))
    into.hunks.append(hunk)
    header = i
    i += 1
    while old_left or new_left:
        if i >= len(rows) or (i == len(rows) - 1 and not rows[i]):  # the text ended
            raise PatchError(f"line {header + 1}: the hunk ends before its header's line counts")
        row = rows[i]
        kind = row[:1] or " "  # an empty row is a blank context line whose space was trimmed
        if kind == "\\":  # `\ No newline at end of file`: the line before it has no line break
            _unterminate(hunk)
            i += 1
            continue
        if kind not in " -+":
            raise PatchError(f"line {i + 1}: {row[:80]!r} is not a context, removed or added line")
        if kind in " -":
            old_left -= 1
        if kind in " +":
            new_left -= 1
        if old_left < 0 or new_left < 0:
            raise PatchError(f"line {header + 1}: the hunk has more lines than its header counts")
        hunk.lines.append(kind + row[1:] + "\n")
        i += 1
    if i < len(rows) and rows[i].startswith("\\"):
        _unterminate(hunk)
        i += 1
    return i


def _unterminate(hunk: Hunk) -> None:
    if hunk.lines and hunk.lines[-1].endswith("\n"):
        hunk.lines[-1] = hunk.lines[-1][:-1]


def _find(lines: list[str], block: list[str], near: int) -> int | None:
    """Where `block` sits in `lines`, the place nearest `near` when it sits in several; None if nowhere."""
    if not block:
        return min(max(near, 0), len(lines))
    places = [i for i in range(len(lines) - len(block) + 1) if lines[i : i + len(block)] == block]
    return min(places, key=lambda i: (abs(i - near), i)) if places else None


def _applied(path: str, text: str, hunks: list[Hunk]) -> str:
    lines = _lines(text)
    shift = 0
    for n, hunk in enumerate(hunks, 1):
        old = hunk.old()
        near = (hunk.old_start - 1 if hunk.old_start else 0) + shift
        at = _find(lines, old, near)
        if at is None:
            expected = next((line for line in old), "")
            raise PatchError(
                f"{path}: hunk {n} (@@ -{hunk.old_start}) does not match the file: its lines "
                f"(from {expected.rstrip()[:80]!r}) are not there"
            )
        new = hunk.new()
        lines[at : at + len(old)] = new
        # Later hunks are looked for as far off as this one was found, past the lines it added or removed.
        shift += at - near + len(new) - len(old)
    return "".join(lines)


def apply(files: Files, text: str) -> dict[str, str]:
    """`files` with the diff `text` applied; raises PatchError naming the file and hunk that does not apply
    (a file created that exists, a file changed or deleted that does not, lines that are not there)."""
    result = dict(files)
    for patch in parse(text):
        if patch.old_path is None:
            if patch.path in result:
                raise PatchError(f"{patch.path}: the diff creates it, but it exists")
            result[patch.path] = _applied(patch.path, "", patch.hunks)
            continue
        if patch.old_path not in result:
            raise PatchError(f"{patch.old_path}: the diff changes it, but there is no such file")
        content = _applied(patch.old_path, result[patch.old_path], patch.hunks)
        del result[patch.old_path]
        if patch.new_path is not None:
            result[patch.new_path] = content
        elif content:
            raise PatchError(f"{patch.old_path}: the diff deletes it, but leaves lines in it")
    return result


def added_lines(text: str) -> dict[str, set[int]]:
    """The 1-based numbers of the lines a diff adds, by the path of each file it leaves."""
    return {p.path: p.added() for p in parse(text) if p.new_path is not None}
