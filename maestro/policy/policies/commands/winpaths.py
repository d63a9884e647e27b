"""Where a Windows path points, relative to the task's workspace, and what a recursive change there means.

A relative path that stays below the task's directory (`.\\build`, `node_modules`) and `$env:TEMP\\x`
are the workspace; a drive root (`C:\\`), the Windows, Program Files and ProgramData folders are the
system; the user's profile (`~`, `$HOME`, `$env:USERPROFILE`, `%USERPROFILE%`) is home; other absolute
and UNC paths, and paths that climb out, are outside; a `$variable` or `%variable%` path is variable.
"""

from __future__ import annotations

import re2

from maestro.policy.policies.commands.hits import Hit, approve, deny
from maestro.policy.policies.commands.paths import Scope

DELETE_FIX = "delete only paths inside the task's workspace (.\\build, node_modules)"
_SYSTEM = re2.compile(
    r"(?i)^[a-z]:\\(?:windows|program files|program files \(x86\)|programdata|system volume information|"
    r"boot|recovery)(?:\\|$)"
)
_PROFILE = re2.compile(r"(?i)^(?:~|\$home|\$env:userprofile|%userprofile%|\$env:appdata|%appdata%)")
_TEMP = re2.compile(r"(?i)^(?:\$env:temp|\$env:tmp|%temp%|%tmp%)\\.")


def win_scope(path: str) -> Scope:
    """Where a Windows path points, relative to the task's workspace."""
    p = path.strip().strip("'\"").replace("/", "\\")
    low = p.lower()
    if _TEMP.match(low):
        return "workspace"
    if _PROFILE.match(low):
        rest = _PROFILE.sub("", low, count=1).strip("\\*")
        return "home" if not rest else ("dotfile" if rest.startswith(".") else "outside")
    if low.startswith(("$", "%")):
        return "variable"
    if re2.match(r"^[a-z]:\\?\*?(?:\.\*)?$", low):
        return "root"
    if _SYSTEM.match(low):
        return "system"
    if low.startswith("\\") or re2.match(r"^[a-z]:", low):
        return "outside"
    if low == ".." or low.startswith("..\\"):
        return "outside"
    return "workspace"


def recursive(where: list[str], verb: str) -> list[Hit]:
    worst: tuple[Scope, str] | None = None
    for t in where:
        s = win_scope(t)
        if s == "workspace":
            continue
        if worst is None or worst[0] == "variable":
            worst = (s, t)
    if worst is None:
        return []
    s, path = worst
    if s == "variable":
        return [
            approve(
                "recursive-delete-variable-path",
                f"recursive {verb} of {path}: the path depends on a variable that could be empty",
                "name the path literally, below the workspace",
                "high",
            )
        ]
    return [
        deny(
            "recursive-delete-outside-workspace",
            f"recursive {verb} of {path}: outside the workspace",
            DELETE_FIX,
        )
    ]
