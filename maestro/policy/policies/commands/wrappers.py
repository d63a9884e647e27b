"""Wrappers that run the rest of their argv as a command (sudo, env, nice, timeout, xargs), peeled off."""

from __future__ import annotations

import re
import shlex

from maestro.policy.policies.commands.words import Word, program_name

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUDO_OPTS_WITH_VALUE = frozenset("ugCDhprtTUc")
_ENV_OPTS_WITH_VALUE = frozenset({"-u", "--unset", "-C", "--chdir"})
_TIMEOUT_OPTS_WITH_VALUE = frozenset({"-s", "--signal", "-k", "--kill-after"})
_XARGS_OPTS_WITH_VALUE = frozenset("nPILsdEaA")
_PLAIN_WRAPPERS = frozenset({"nohup", "setsid", "builtin", "exec", "unbuffer", "caffeinate"})
SUDO_WRAPPERS = frozenset({"sudo", "doas", "run0", "pkexec"})


def unwrap(words: tuple[Word, ...]) -> tuple[tuple[Word, ...], bool, bool]:
    """Peel wrappers off an argv: the command that really runs, whether as root, whether under xargs."""
    sudo = xargs = False
    for _ in range(16):
        if not words:
            break
        name = program_name(words[0].text)
        rest = words[1:]
        if name in SUDO_WRAPPERS:
            sudo = True
            rest = _skip_options(rest, _SUDO_OPTS_WITH_VALUE)
        elif name == "env":
            rest = _skip_options(rest, frozenset("uCP"), _ENV_OPTS_WITH_VALUE, split_value=True)
            if rest and rest[0].text.startswith("-S"):
                rest = _split_string(rest)
            while rest and "=" in rest[0].text and _IDENT.match(rest[0].text):
                rest = rest[1:]
        elif name in ("nice", "ionice", "chrt", "taskset", "stdbuf"):
            rest = _skip_options(rest, frozenset("ncpo" if name != "stdbuf" else ""))
            if name in ("chrt", "taskset") and rest:
                rest = rest[1:]
        elif name == "timeout":
            rest = _skip_options(rest, frozenset("sk"), _TIMEOUT_OPTS_WITH_VALUE)
            rest = rest[1:]
        elif name == "time":
            rest = _skip_options(rest, frozenset("fo"))
        elif name == "command":
            if any(w.text in ("-v", "-V") for w in rest[:2]):
                break
            rest = _skip_options(rest, frozenset())
        elif name == "xargs":
            xargs = True
            rest = _skip_options(rest, _XARGS_OPTS_WITH_VALUE)
        elif name == "busybox" and rest and not rest[0].text.startswith("-"):
            pass
        elif name == "chroot":
            sudo = True
            rest = _skip_options(rest, frozenset())[1:]
        elif name == "flock":
            rest = _skip_options(rest, frozenset("wE"))[1:]
        elif name in _PLAIN_WRAPPERS:
            rest = _skip_options(rest, frozenset())
        else:
            break
        if not rest:
            break  # a wrapper alone (`env`, `sudo -i`) is the command itself
        words = rest
    return words, sudo, xargs


def _split_string(words: tuple[Word, ...]) -> tuple[Word, ...]:
    """`env -S 'cmd args' more`: the string split into words, then the rest."""
    first = words[0].text[2:]
    rest = words[1:]
    if not first and rest:
        first, rest = rest[0].text, rest[1:]
    try:
        parts = shlex.split(first)
    except ValueError:
        parts = first.split()
    return tuple(Word(p) for p in parts) + rest


def _skip_options(
    words: tuple[Word, ...],
    short_with_value: frozenset[str],
    long_with_value: frozenset[str] = frozenset(),
    *,
    split_value: bool = False,
) -> tuple[Word, ...]:
    """Drop leading options (and their values) up to the wrapped command."""
    i = 0
    while i < len(words):
        t = words[i].text
        if t == "--":
            return words[i + 1 :]
        if not t.startswith("-") or t == "-":
            break
        if t.startswith("--"):
            i += 2 if t in long_with_value else 1
            continue
        flags = t[1:]
        if split_value and flags[:1] == "S":
            break  # env -S: the rest is a command string, judged by the rules
        takes = next((k for k, f in enumerate(flags) if f in short_with_value), -1)
        i += 2 if takes == len(flags) - 1 else 1
    return words[i:]
