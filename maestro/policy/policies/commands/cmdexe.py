"""Rules for cmd.exe commands and the native Windows programs both shells run (tokenized by winshell).

`del /s` and `rd /s` are recursive deletes judged by where they point (winpaths); `format`, `diskpart`,
shadow-copy and backup deletion (`vssadmin`, `wbadmin`, `wmic shadowcopy`, `bcdedit` recovery),
clearing event logs, turning the firewall off, administrator accounts, shutdown, recursive ownership
and ACL changes, machine registry deletes, Run keys and scheduled tasks are judged by name.

Sources: the Windows command reference on Microsoft Learn (del, rd, format, diskpart, vssadmin, wbadmin,
bcdedit, wevtutil, netsh advfirewall, net user/localgroup, shutdown, takeown, icacls, reg, schtasks);
MITRE ATT&CK T1490 (inhibit system recovery), T1070.001 (clear Windows event logs).
"""

from __future__ import annotations

from collections.abc import Sequence

import re2

from maestro.policy.policies.commands.hits import Hit, Nested, approve, deny
from maestro.policy.policies.commands.winpaths import DELETE_FIX, recursive, win_scope

NATIVE = frozenset(
    {
        "vssadmin",
        "wbadmin",
        "wmic",
        "bcdedit",
        "wevtutil",
        "netsh",
        "diskpart",
        "schtasks",
        "reg",
        "takeown",
        "icacls",
    }
)
"""Windows programs judged here whichever shell (bash included, under WSL or Git Bash) runs them."""


def judge(name: str, args: tuple[str, ...]) -> Sequence[Hit | Nested]:
    low = tuple(a.lower() for a in args)
    switches = {a for a in low if a.startswith("/")}
    operands = [a for a in args if not a.startswith("/")]
    if name in ("del", "erase", "rd", "rmdir"):
        if "/s" in switches:
            return list(recursive(operands, "delete"))
        return [
            deny("system-file-write", f"{name} deletes {w}: system files", DELETE_FIX)
            for w in operands
            if win_scope(w) in ("system", "root")
        ][:1]
    if name == "format" and any(re2.match(r"^[a-z]:$", a) for a in low):
        return [deny("disk-format", "format erases a drive", "format an image file")]
    if name == "diskpart":
        return [approve("disk-format", "diskpart can erase disks and partitions", "ask an operator", "high")]
    if (
        (name == "vssadmin" and "delete" in low)
        or (name == "wbadmin" and "delete" in low)
        or (name == "wmic" and "shadowcopy" in low and "delete" in low)
        or (name == "bcdedit" and ("recoveryenabled" in low or "bootstatuspolicy" in low))
    ):
        return [
            deny(
                "backup-delete",
                f"{name} deletes shadow copies or recovery: the host cannot be restored",
                "ask an operator",
            )
        ]
    if name == "wevtutil" and low[:1] and low[0] in ("cl", "clear-log"):
        return [deny("evidence-tampering", "wevtutil cl clears an event log", "leave logs alone", "high")]
    if name == "netsh" and "advfirewall" in low and "off" in low:
        return [
            deny(
                "firewall-disable", "netsh advfirewall turns the firewall off", "change rules through review"
            )
        ]
    if name == "net" and low[:1] == ("localgroup",) and "administrators" in low and "/add" in low:
        return [
            deny(
                "privilege-grant",
                "net localgroup administrators /add makes an administrator",
                "ask an operator",
            )
        ]
    if name == "net" and low[:1] == ("user",) and ("/add" in low or len(operands) >= 3):
        return [approve("account-change", "net user changes the host's accounts", "ask an operator", "high")]
    if name == "shutdown" and switches & {"/s", "/r", "/p", "/h"} and "/a" not in switches:
        return [deny("shutdown", "shutdown stops or reboots the host", "never stop the host from a task")]
    if name in ("takeown", "icacls", "cacls") and ("/r" in switches or "/t" in switches):
        return list(
            recursive(
                [a for a in operands if ":" not in a[2:] or re2.match(r"^[a-zA-Z]:", a)], "permission change"
            )
        )
    if (
        name == "reg"
        and low[:1] == ("delete",)
        and any(a.startswith(("hklm", "hkey_local_machine")) for a in low)
    ):
        return [
            approve("registry-change", "reg delete removes machine-wide settings", "ask an operator", "high")
        ]
    if name == "reg" and low[:1] == ("add",) and any("\\run" in a for a in low):
        return [
            approve("persistence", "reg add ...\\Run starts a program at every logon", "use the orchestrator")
        ]
    if name == "schtasks" and "/create" in switches:
        tr = next((args[i + 1] for i, a in enumerate(low[:-1]) if a == "/tr"), "")
        return [
            approve(
                "persistence",
                "schtasks /create installs a task that outlives this one",
                "use the orchestrator",
            ),
            *([Nested("cmd", tr)] if tr else []),
        ]
    if name == "certutil" and "-urlcache" in low and "-decode" not in low:
        return []
    return []
