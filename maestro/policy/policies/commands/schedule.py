"""Code a command schedules to run later: crontab lines, `at`/`batch` jobs, systemd units and timers.

A scheduled job is code that will run, so its command is judged as if it ran now (a crontab line that
downloads and runs a script is a download-and-run). The scheduled text comes from what is fed to
`crontab`, `at` or `batch` (an echo or printf piped in, a heredoc, a here-string), from what is written
to a cron or systemd unit path, and from `systemd-run`'s argv.

Sources: crontab(5) (five time fields or an `@` nickname, then the command; system crontabs add a user
field), at(1), systemd.service(5) (`ExecStart=` and friends, with `-@:+!` prefixes), systemd-run(1).
"""

from __future__ import annotations

import re2

from maestro.policy.policies.commands.args import command_start
from maestro.policy.policies.commands.hits import Nested
from maestro.policy.policies.commands.words import Invocation, program_name

_CRON_LINE = re2.compile(
    r"^\s*(?:@(?:reboot|yearly|annually|monthly|weekly|daily|hourly|midnight)|"
    r"(?:\S+\s+){4}\S+)\s+(.+)$"
)
_SYSTEM_CRON_USER = re2.compile(r"^[a-z_][a-z0-9_-]*\s+(.+)$")
_EXEC_LINE = re2.compile(r"^\s*Exec(?:Start|StartPre|StartPost|Stop|Reload|Condition)=[-@:+!]*(.+)$")
_CRON_PATH = re2.compile(r"^(?:/etc/cron|/var/spool/cron|/etc/crontab)")
_UNIT_PATH = re2.compile(r"(?:^|/)systemd/(?:system|user)/[^/]+\.(?:service|timer)$|\.service$")
_RUN_WITH_VALUE = frozenset(
    {
        "--on-calendar",
        "--on-active",
        "--on-boot",
        "--on-startup",
        "--unit",
        "-u",
        "-p",
        "--property",
        "--uid",
        "--gid",
        "-E",
        "--setenv",
        "--description",
        "--slice",
        "-M",
        "--machine",
        "-H",
        "--host",
        "--working-directory",
        "--timer-property",
        "--path-property",
        "--socket-property",
    }
)


def cron_commands(text: str, *, system: bool = False) -> list[str]:
    """The commands of crontab text (comments and variable lines skipped)."""
    out = []
    for line in text.replace("\\n", "\n").splitlines()[:256]:
        if line.lstrip().startswith("#") or re2.match(r"^\s*[A-Za-z_]+=", line):
            continue
        m = _CRON_LINE.match(line)
        if m:
            command = m.group(1)
            user = _SYSTEM_CRON_USER.match(command) if system else None
            out.append(user.group(1) if user else command)
    return out


def unit_commands(text: str) -> list[str]:
    """The commands a systemd unit runs (`ExecStart=` and its siblings)."""
    return [
        m.group(1) for line in text.replace("\\n", "\n").splitlines()[:512] if (m := _EXEC_LINE.match(line))
    ]


def _fed_text(inv: Invocation) -> str | None:
    """What an invocation reads on stdin when it is literal: a heredoc, a here-string, a piped echo."""
    if inv.stdin_text is not None:
        return inv.stdin_text
    if inv.upstream and inv.upstream[-1] and program_name(inv.upstream[-1][0]) in ("echo", "printf"):
        return " ".join(a for a in inv.upstream[-1][1:] if a not in ("-e", "-n"))
    return None


def scheduled(inv: Invocation) -> list[Nested]:
    """Shell text an invocation schedules (to be judged as code that will run)."""
    prog, argv = inv.program, inv.argv
    out: list[str] = []
    if prog == "crontab":
        text = _fed_text(inv)
        if text is not None:
            out += cron_commands(text)
    elif prog in ("at", "batch"):
        text = _fed_text(inv)
        if text is not None:
            out.append(text)
        if "-f" in argv:
            pass  # a file we cannot read: its being scheduled is judged by the persistence rule
    elif prog == "systemd-run":
        start = command_start(argv[1:], _RUN_WITH_VALUE) + 1
        if start < len(argv):
            return [Nested("argv", argv=argv[start:], sudo=inv.sudo)]
    elif prog in ("echo", "printf", "cat", "tee"):
        body = _written(inv)
        for path, text in body:
            if _CRON_PATH.match(path):
                out += cron_commands(text, system=not path.startswith("/var/spool"))
            elif _UNIT_PATH.search(path):
                out += unit_commands(text)
    return [Nested("shell", t, sudo=inv.sudo) for t in out[:16]]


def _written(inv: Invocation) -> list[tuple[str, str]]:
    """(path, text) for text an echo/printf/cat/tee writes to a file, when both are literal."""
    prog = inv.program
    if prog in ("echo", "printf"):
        text = " ".join(a for a in inv.argv[1:] if a not in ("-e", "-n"))
    elif prog in ("cat", "tee"):
        fed = _fed_text(inv)
        if fed is None:
            return []
        text = fed
    else:
        return []
    paths = [r.target.text for r in inv.redirects if r.target and r.op in (">", ">>", ">|")]
    if prog == "tee":
        paths += [w.text for w in inv.words[1:] if not w.text.startswith("-")]
    down = inv.downstream[:1]
    if prog in ("echo", "printf") and down and down[0] and program_name(down[0][0]) == "tee":
        paths += [a for a in down[0][1:] if not a.startswith("-")]
    return [(p, text) for p in paths]


def feeds_scheduler(inv: Invocation) -> list[Nested]:
    """An echo whose output a later stage hands to crontab or at: `(crontab -l; echo ...) | crontab -`."""
    if inv.program not in ("echo", "printf"):
        return []
    down = [program_name(a[0]) for a in inv.downstream if a]
    if not down or down[-1] not in ("crontab", "at", "batch"):
        return []
    text = " ".join(a for a in inv.argv[1:] if a not in ("-e", "-n"))
    found = cron_commands(text) if down[-1] == "crontab" else [text]
    return [Nested("shell", t, sudo=inv.sudo) for t in found[:16]]
