"""What a command rule reports: a Hit (rule, action, why, fix) or Nested text to judge in turn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from maestro.policy.policies.commands.paths import Scope
from proto.v1 import Severity

Outcome = Literal["deny", "approve"]
NestedKind = Literal["shell", "python", "perl", "ruby", "node", "php", "sql", "mongo", "argv", "pwsh", "cmd"]


@dataclass(frozen=True)
class Hit:
    """One rule a command broke."""

    rule_id: str
    action: Outcome
    severity: Severity
    message: str
    fix: str


@dataclass(frozen=True)
class Nested:
    """Code a command runs that must be judged too: a shell string, a script, SQL, or an argv."""

    kind: NestedKind
    text: str = ""
    argv: tuple[str, ...] = ()
    sudo: bool = False


def deny(rule: str, message: str, fix: str, severity: Severity = "critical") -> Hit:
    """A Hit that refuses the task."""
    return Hit(f"commands.{rule}", "deny", severity, message, fix)


def approve(rule: str, message: str, fix: str, severity: Severity = "medium") -> Hit:
    """A Hit that parks the task for a human."""
    return Hit(f"commands.{rule}", "approve", severity, message, fix)


_WRITE_FIX = "write inside the task's workspace, or ask an operator to make the change"


def write_hit(scope: Scope, path: str, how: str = "writes") -> Hit | None:
    """What writing to a path means: denied for system files, devices and keys; approved outside."""
    if scope == "authorized-keys":
        return deny("authorized-keys-write", f"{how} {path}: adds a way to log in (persistence)", _WRITE_FIX)
    if scope == "sudoers":
        return deny("sudoers-write", f"{how} {path}: grants root (privilege escalation)", _WRITE_FIX)
    if scope in ("system", "root"):
        return deny(
            "system-file-write", f"{how} {path}: system configuration or binaries", _WRITE_FIX, "high"
        )
    if scope == "device":
        return deny(
            "device-write",
            f"{how} {path}: writes a raw device, destroying what is on it",
            "write to an image file",
        )
    if scope == "network":
        return deny(
            "network-redirect",
            f"{how} {path}: a raw network socket (reverse shell or exfiltration)",
            "use an ordinary client (curl, git) against an allowed host",
        )
    if scope == "dotfile":
        return approve(
            "dotfile-write", f"{how} {path}: the user's own configuration, outside the workspace", _WRITE_FIX
        )
    if scope in ("home", "outside"):
        return approve("write-outside-workspace", f"{how} {path}: outside the task's workspace", _WRITE_FIX)
    return None
