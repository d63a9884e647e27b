"""Rules for PowerShell and cmd.exe commands (tokenized by winshell): the Windows forms of the same harms.

Recursive deletes (`Remove-Item -Recurse -Force`, `rd /s /q`, `del /s /q`) are judged by where they
point, as on POSIX: a relative path below the task's directory is the workspace, a drive root, the
Windows and Program Files folders, the user's profile and other absolute or UNC paths are not, and a
`$variable` or `%variable%` path needs approval. Code fetched and run (`iwr ... | iex`, `iex (irm ...)`,
`DownloadString`), encoded commands, elevation (`Start-Process -Verb RunAs`), execution policy,
Defender and firewall switches, shadow-copy and log deletion, formatting and shutdown are judged by name.
PowerShell parameters are matched the way PowerShell binds them: case-insensitive, any unambiguous prefix.

Sources: Microsoft Learn's cmdlet references (Microsoft.PowerShell.Management, Defender, NetSecurity,
LocalAccounts, Storage), the Windows command reference (del, rd, format, vssadmin, wbadmin, bcdedit,
schtasks, reg, net, netsh, icacls, takeown, shutdown), MITRE ATT&CK T1059.001/.003, T1490, T1562.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import re2

from maestro.policy.policies.commands import cmdexe
from maestro.policy.policies.commands.config import CommandsPolicy
from maestro.policy.policies.commands.hits import Hit, Nested, approve, deny
from maestro.policy.policies.commands.paths import is_sensitive
from maestro.policy.policies.commands.winpaths import DELETE_FIX, recursive, win_scope
from maestro.policy.policies.commands.winshell import Dialect, WinCommand, tokenize

_REMOVE = frozenset({"remove-item", "ri", "rm", "del", "erase", "rd", "rmdir", "rmdir.exe"})
_FETCH = re2.compile(
    r"(?i)\b(?:iwr|irm|invoke-webrequest|invoke-restmethod|curl|wget|start-bitstransfer)\b|downloadstring|"
    r"downloaddata|downloadfile|net\.webclient|system\.net\.http"
)
_DECODE = re2.compile(r"(?i)frombase64string|\[convert\]::from|-enc(?:odedcommand)?\b")
_ELEVATED = re2.compile(r"(?i)^runas$")
_PIPE_FIX = "download to a file (Invoke-WebRequest -OutFile), review it, then run it"


def _is_param(word: str, name: str, shortest: int = 1) -> bool:
    """Whether a word is PowerShell's `-name` parameter (any prefix of at least `shortest` letters)."""
    if not word.startswith("-") or len(word) < 2:
        return False
    given = word[1:].split(":", 1)[0].lower()
    return len(given) >= shortest and name.startswith(given)


def _value(words: tuple[str, ...], name: str, shortest: int = 1) -> str | None:
    for i, w in enumerate(words):
        if _is_param(w, name, shortest):
            if ":" in w:
                return w.split(":", 1)[1]
            return words[i + 1] if i + 1 < len(words) else ""
    return None


def _operands(words: tuple[str, ...], with_value: tuple[str, ...]) -> list[str]:
    """Positional words, skipping `-param value` pairs for the parameters named in with_value."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w.startswith("-") and len(w) > 1:
            takes = any(_is_param(w, n, 2) for n in with_value) and ":" not in w
            i += 2 if takes else 1
            continue
        out.append(w)
        i += 1
    return out


def launcher(
    name: str, args: tuple[str, ...], upstream: tuple[tuple[str, ...], ...]
) -> Sequence[Hit | Nested]:
    """`powershell -Command ...`, `pwsh -EncodedCommand ...`, `cmd /c ...`: the code they run."""
    if name in ("cmd",):
        at = next((i for i, a in enumerate(args) if a.lower() in ("/c", "/k", "/r")), -1)
        return [Nested("cmd", " ".join(args[at + 1 :]))] if at >= 0 and at + 1 < len(args) else []
    encoded = (
        _value(args, "encodedcommand", 1) if any(_is_param(a, "encodedcommand", 1) for a in args) else None
    )
    if encoded is not None and not any(_is_param(a, "executionpolicy", 2) and a == encoded for a in args):
        try:
            text = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-16-le", "replace")
        except (binascii.Error, ValueError):
            text = ""
        return [
            deny(
                "decoded-to-shell",
                f"{name} -EncodedCommand runs base64-encoded code: hidden from review",
                "run the decoded command itself, in plain text",
            ),
            *([Nested("pwsh", text)] if text else []),
        ]
    for i, a in enumerate(args):
        if _is_param(a, "command", 1) and not _is_param(a, "configurationname", 2):
            return [Nested("pwsh", " ".join(args[i + 1 :]))] if i + 1 < len(args) else []
        if _is_param(a, "file", 1):
            return []
    code = [a for a in args if not a.startswith("-")]
    if upstream and any(_FETCH.search(" ".join(up)) for up in upstream) and (not code or code == ["-"]):
        return [
            deny("pipe-to-shell", f"a download is piped into {name}: remote code runs unreviewed", _PIPE_FIX)
        ]
    return [Nested("pwsh", " ".join(code))] if code and code != ["-"] and not args[0].startswith("-") else []


def _pwsh(cmd: WinCommand, name: str, args: tuple[str, ...]) -> Sequence[Hit | Nested]:
    text = " ".join(args)
    if name in ("invoke-expression", "iex"):
        up = " ".join(" ".join(s) for s in cmd.upstream)
        if _FETCH.search(text) or _FETCH.search(up):
            return [
                deny("pipe-to-shell", "Invoke-Expression runs code downloaded from the network", _PIPE_FIX)
            ]
        if _DECODE.search(text) or _DECODE.search(up):
            return [
                deny("decoded-to-shell", "Invoke-Expression runs base64-decoded code", "run it in plain text")
            ]
        return [Nested("pwsh", a.strip("'\"")) for a in args if not a.startswith("-")][:4]
    if name in ("start-process", "saps", "start") and (_ELEVATED.match(_value(args, "verb", 1) or "")):
        return [
            approve("sudo", "Start-Process -Verb RunAs runs a program as administrator", "run it unelevated")
        ]
    if name == "set-executionpolicy" and re2.search(r"(?i)\b(unrestricted|bypass)\b", text):
        return [
            approve(
                "execution-policy", "Set-ExecutionPolicy lets unsigned scripts run", "sign the script", "high"
            )
        ]
    if name in ("set-mppreference", "add-mppreference") and re2.search(
        r"(?i)-(disable\w+|exclusion\w+)", text
    ):
        return [
            deny(
                "defender-disable",
                f"{cmd.words[0]} switches off or blinds Microsoft Defender",
                "leave Defender on",
            )
        ]
    if name == "set-netfirewallprofile" and re2.search(r"(?i)-enabled\s*:?\s*(\$?false|0)", text):
        return [
            deny(
                "firewall-disable",
                "Set-NetFirewallProfile turns the firewall off",
                "change rules through review",
            )
        ]
    if name in ("clear-eventlog", "remove-eventlog", "clear-history", "clhy", "limit-eventlog"):
        return [
            deny(
                "evidence-tampering",
                f"{cmd.words[0]} erases the record",
                "leave logs and history alone",
                "high",
            )
        ]
    if name in ("format-volume", "clear-disk", "initialize-disk", "remove-partition", "format"):
        if name != "format" or any(re2.match(r"(?i)^[a-z]:$", a) for a in args):
            return [deny("disk-format", f"{cmd.words[0]} erases a disk", "format an image file")]
    if name in ("stop-computer", "restart-computer"):
        return [
            deny(
                "shutdown",
                f"{cmd.words[0]} shuts down or reboots the host",
                "never stop the host from a task",
            )
        ]
    if name == "add-localgroupmember" and re2.search(r"(?i)administrators|remote desktop users", text):
        return [deny("privilege-grant", "Add-LocalGroupMember makes an administrator", "ask an operator")]
    if name in ("new-localuser", "set-localuser", "remove-localuser"):
        return [
            approve(
                "account-change", f"{cmd.words[0]} changes the host's accounts", "ask an operator", "high"
            )
        ]
    if name in ("register-scheduledtask", "new-scheduledtask", "new-service"):
        return [
            approve(
                "persistence",
                f"{cmd.words[0]} installs something that outlives the task",
                "use the orchestrator",
            )
        ]
    if re2.match(r"^remove-(?:az|aws|gcp|gce|oci)\w*|^remove-azure\w*", name):
        return [
            deny("cloud-delete", f"{cmd.words[0]} deletes a cloud resource and its data", "ask an operator")
        ]
    if name in ("invoke-webrequest", "iwr", "invoke-restmethod", "irm", "curl", "wget"):
        sent = [_value(args, "infile", 2) or ""] + [s for s in cmd.subexpressions]
        body = _value(args, "body", 1) or ""
        if any(is_sensitive(_strip(x)) for x in sent if x) or re2.search(
            r"(?i)(\.ssh|\.aws|id_rsa|credentials)", body
        ):
            return [
                deny(
                    "exfiltration",
                    f"{cmd.words[0]} uploads a credential or key file",
                    "never send keys off the host",
                )
            ]
        stage = cmd.upstream[-1] if cmd.upstream else ()
        if (
            stage
            and stage[0].lower() in ("get-content", "gc", "cat", "type")
            and any(is_sensitive(_strip(a)) for a in stage[1:])
        ):
            return [
                deny(
                    "exfiltration",
                    f"{cmd.words[0]} sends a credential file piped to it",
                    "never send keys off the host",
                )
            ]
    if name in _REMOVE:
        recurse = any(_is_param(a, "recurse", 1) for a in args if not a.startswith("-r") or len(a) > 1)
        where = _operands(args, ("path", "literalpath", "include", "exclude", "filter"))
        where += [v for v in (_value(args, "path", 2), _value(args, "literalpath", 1)) if v]
        history = [w for w in where if re2.search(r"(?i)consolehost_history|historysavepath", w)]
        if history:
            return [
                deny(
                    "evidence-tampering",
                    "Remove-Item deletes the PowerShell history",
                    "leave history alone",
                    "high",
                )
            ]
        if recurse:
            return list(recursive(where, "delete"))
        return [
            deny("system-file-write", f"deletes {w}: system files", DELETE_FIX)
            for w in where
            if win_scope(w) in ("system", "root")
        ][:1]
    return []


def _strip(path: str) -> str:
    p = path.strip("'\"()").replace("\\", "/")
    for home in ("$HOME/", "$env:USERPROFILE/", "%USERPROFILE%/", "$home/"):
        if p.lower().startswith(home.lower()):
            return "~/" + p[len(home) :]
    return p


def judge(text: str, how: Dialect, policy: CommandsPolicy) -> tuple[list[Hit], list[Nested]]:
    """The Hits of PowerShell or cmd text, and the code it runs to judge next."""
    del policy  # Windows paths have their own notion of the workspace (win_scope)
    hits: list[Hit] = []
    nested: list[Nested] = []
    for cmd in tokenize(text, how):
        name, args = cmd.name, cmd.words[1:]
        if name in ("&", ".") and args:
            name, args = args[0].lower().removesuffix(".exe"), args[1:]
        if name in ("powershell", "pwsh", "cmd"):
            found = launcher(name, args, cmd.upstream)
        else:
            found = _pwsh(cmd, name, args) if how == "pwsh" else []
            if not found and not (how == "pwsh" and name in _REMOVE | {"format"}):
                found = cmdexe.judge(name, args)  # native programs (vssadmin, netsh, shutdown) run from both
        for item in found:
            if isinstance(item, Hit):
                hits.append(item)
            else:
                nested.append(item)
        if how == "pwsh":
            nested += [Nested("pwsh", s) for s in cmd.subexpressions[:8] if s.strip()]
    return hits, nested
