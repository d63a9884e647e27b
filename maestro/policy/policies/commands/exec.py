"""Rules for the code a command runs: shells and interpreters, what feeds them, and where data goes.

A shell or interpreter fed by a download or a base64 decoder is denied; one wired to a network
connection is a reverse shell; credentials or the environment sent to the network are exfiltration.
The code itself (`bash -c` strings, `python -c` programs, echoed or heredoc scripts) comes back as
Nested items for the caller to judge.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re

from maestro.policy.policies.commands.args import command_start
from maestro.policy.policies.commands.config import CommandsPolicy
from maestro.policy.policies.commands.hits import Hit, Nested, NestedKind, approve, deny
from maestro.policy.policies.commands.words import Invocation, Word, program_name

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "mksh", "fish", "csh", "tcsh", "busybox"})
INTERPRETERS: dict[str, NestedKind] = {
    "python": "python",
    "pypy": "python",
    "perl": "perl",
    "ruby": "ruby",
    "node": "node",
    "nodejs": "node",
    "php": "php",
    "deno": "node",
    "bun": "node",
}
DOWNLOADERS = frozenset({"curl", "wget", "fetch", "http", "https", "aria2c", "lwp-download", "iwr"})
NETWORK = frozenset({"nc", "ncat", "netcat", "socat", "telnet", "openssl", "cryptcat"})
DECODERS = frozenset({"base64", "base32", "xxd", "uudecode", "openssl", "basenc"})
SECRET_READERS = frozenset({"cat", "tar", "zip", "gzip", "base64", "xxd", "head", "tail", "less", "more"})
ENV_DUMPERS = frozenset({"env", "printenv", "set", "export"})
_SAFE_UPSTREAM = frozenset({"find", "ls", "echo", "printf"})

_PIPE_FIX = "download to a file (curl -o file), review it, then run it"


def interp_mode(prog: str, args: tuple[Word, ...]) -> tuple[str, Word | None, tuple[str, ...]]:
    """How an interpreter gets its code: ('code', word), ('file', word), ('module', argv) or ('stdin',)."""
    texts = [w.text for w in args]
    code_flags = {
        "python": "c",
        "pypy": "c",
        "perl": "eE",
        "ruby": "e",
        "node": "ep",
        "nodejs": "ep",
        "php": "r",
    }
    value_flags = {"python": "mWXQ", "perl": "IMmx", "ruby": "rIEC", "node": "r", "php": "cdz"}
    if prog in SHELLS:
        code_letters, takes = "c", "oO"
    else:
        code_letters, takes = code_flags.get(prog, "e"), value_flags.get(prog, "")
    i = 0
    while i < len(args):
        t = texts[i]
        if t == "--":
            return ("file", args[i + 1], ()) if i + 1 < len(args) else ("stdin", None, ())
        if t in ("--eval", "--print", "--command"):
            return ("code", args[i + 1], ()) if i + 1 < len(args) else ("stdin", None, ())
        if t.startswith("--"):
            if t in ("--rcfile", "--init-file", "--require", "--input-type"):
                i += 1
            i += 1
            continue
        if t in ("eval", "-") and i == 0 and prog == "deno":
            return ("code", args[1], ()) if len(args) > 1 else ("stdin", None, ())
        if t.startswith(("-", "+")) and len(t) > 1:
            for k, c in enumerate(t[1:], start=1):
                if c == "s" and prog in SHELLS:
                    return "stdin", None, ()
                if c in code_letters:
                    attached = t[k + 1 :]
                    if attached and prog not in SHELLS:
                        return "code", Word(attached), ()
                    rest = [w for w in args[i + 1 :] if not w.text.startswith("-")] if prog in SHELLS else []
                    target = rest[0] if rest else (args[i + 1] if i + 1 < len(args) else None)
                    return ("code", target, ()) if target else ("stdin", None, ())
                if c == "m" and prog == "python":
                    module = t[k + 1 :] or (texts[i + 1] if i + 1 < len(texts) else "")
                    skip = 1 if t[k + 1 :] else 2
                    return "module", None, (module, *texts[i + skip :])
                if c in takes:
                    if not t[k + 1 :]:
                        i += 1
                    break
            i += 1
            continue
        return ("stdin", None, ()) if t == "-" else ("file", args[i], ())
    return "stdin", None, ()


def _decode_literal(upstream: tuple[tuple[str, ...], ...]) -> str | None:
    """The script an `echo <base64> | base64 -d` pipeline decodes, when it is literal."""
    if len(upstream) < 2 or program_name(upstream[-2][0] if upstream[-2] else "") not in ("echo", "printf"):
        return None
    payload = "".join(a for a in upstream[-2][1:] if not a.startswith("-"))
    try:
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=False).decode(
            "utf-8", "replace"
        )
    except (binascii.Error, ValueError):
        return None


def _is_decoder(argv: tuple[str, ...]) -> bool:
    if not argv or program_name(argv[0]) not in DECODERS:
        return False
    prog = program_name(argv[0])
    if prog == "xxd":
        return any(a.startswith("-r") for a in argv[1:])
    if prog == "uudecode":
        return True
    if prog == "openssl":
        return "-d" in argv and any("base64" in a or a == "-a" for a in argv)
    return any(
        a in ("-d", "-D", "--decode") or (a.startswith("-") and not a.startswith("--") and "d" in a)
        for a in argv[1:]
    )


def _programs(argvs: tuple[tuple[str, ...], ...]) -> set[str]:
    return {program_name(a[0]) for a in argvs if a}


def executes(
    inv: Invocation, prog: str, kind: NestedKind, mode: str, code: Word | None
) -> list[Hit | Nested]:
    """An interpreter or shell: where its code comes from, and that code to judge."""
    out: list[Hit | Nested] = []
    subst_progs = {program_name(s[0]) for s in (code.substs if code else ()) if s}
    if subst_progs & DOWNLOADERS:
        return [
            deny(
                "pipe-to-shell",
                f"{prog} runs code downloaded by {sorted(subst_progs & DOWNLOADERS)[0]}",
                _PIPE_FIX,
            )
        ]
    if code is not None and any(_is_decoder(s) for s in code.substs):
        return [
            deny(
                "decoded-to-shell",
                f"{prog} runs code decoded from base64: hidden from review",
                "run the decoded command itself, in plain text",
            )
        ]
    if mode == "code" and code is not None:
        text = code.text
        if inv.xargs and "{}" in text:
            targets = xargs_targets(inv)
            text = text.replace("{}", targets[0].text) if targets else text
        out.append(Nested(kind, text, sudo=inv.sudo))
    if mode != "stdin":
        return out
    up = _programs(inv.upstream)
    if up & DOWNLOADERS:
        return [
            deny("pipe-to-shell", f"a download is piped into {prog}: remote code runs unreviewed", _PIPE_FIX)
        ]
    if any(_is_decoder(a) for a in inv.upstream):
        out.append(
            deny(
                "decoded-to-shell",
                f"base64-decoded text is piped into {prog}: hidden from review",
                "run the decoded command itself, in plain text",
            )
        )
        decoded = _decode_literal(inv.upstream)
        if decoded:
            out.append(Nested(kind, decoded, sudo=inv.sudo))
        return out
    if (up | _programs(inv.downstream)) & NETWORK:
        return [
            deny(
                "reverse-shell",
                f"{prog} is wired to a network connection: a remote shell",
                "do not expose a shell over the network",
            )
        ]
    if inv.upstream and inv.upstream[-1] and program_name(inv.upstream[-1][0]) in ("echo", "printf"):
        out.append(
            Nested(kind, " ".join(a for a in inv.upstream[-1][1:] if a not in ("-e", "-n")), sudo=inv.sudo)
        )
    if inv.stdin_text is not None:
        out.append(Nested(kind, inv.stdin_text, sudo=inv.sudo))
    return out


def xargs_targets(inv: Invocation) -> list[Word] | None:
    """The paths xargs feeds in, when the stage before it names them (find, ls, echo); None if unknown."""
    if not inv.upstream or not inv.upstream[-1]:
        return None
    argv = inv.upstream[-1]
    prog = program_name(argv[0])
    if prog not in _SAFE_UPSTREAM:
        return None
    if prog == "find":
        return [Word(p) for p in find_starts(argv[1:])]
    return [Word(a) for a in argv[1:] if not a.startswith("-")] or [Word(".")]


def find_starts(args: tuple[str, ...]) -> list[str]:
    starts: list[str] = []
    for a in args:
        if a in ("-H", "-L", "-P"):
            continue
        if a.startswith(("-", "(", "!", "\\(")):
            break
        starts.append(a)
    return starts or ["."]


def eval_like(inv: Invocation, nested: list[Nested]) -> list[Hit]:
    prog, words = inv.program, inv.words
    args = words[1:]
    if any({program_name(s[0]) for s in w.substs if s} & DOWNLOADERS for w in args):
        return [deny("pipe-to-shell", f"{prog} runs code downloaded from the network", _PIPE_FIX)]
    if any(_is_decoder(s) for w in args for s in w.substs):
        return [
            deny(
                "decoded-to-shell",
                f"{prog} runs base64-decoded code",
                "run the decoded command in plain text",
            )
        ]
    if prog in ("source", ".") and all(w.text in ("-", "/dev/stdin") for w in args):
        if _programs(inv.upstream) & DOWNLOADERS:  # fish: `curl ... | source`
            return [
                deny(
                    "pipe-to-shell",
                    f"a download is piped into {prog}: remote code runs unreviewed",
                    _PIPE_FIX,
                )
            ]
    if prog == "eval":
        nested.append(Nested("shell", " ".join(w.text for w in args), sudo=inv.sudo))
    elif prog in ("su", "runuser", "script"):
        texts = [w.text for w in args]
        for i, t in enumerate(texts):
            if t in ("-c", "--command") and i + 1 < len(texts):
                nested.append(Nested("shell", texts[i + 1], sudo=prog != "script" or inv.sudo))
        if prog == "su" and not nested:
            return [approve("sudo", "su opens a root shell", "run the command without raised privileges")]
    elif prog == "watch":
        argv = tuple(w.text for w in args)
        start = command_start(argv, frozenset({"-n", "--interval", "-q", "--equexit", "-d"}))
        nested.append(Nested("shell", " ".join(argv[start:])))
    return []


_PACKAGE_MANAGERS = frozenset(
    {
        "apt",
        "apt-get",
        "aptitude",
        "yum",
        "dnf",
        "zypper",
        "apk",
        "pacman",
        "pip",
        "pipx",
        "npm",
        "yarn",
        "pnpm",
        "gem",
        "snap",
        "brew",
        "port",
        "dpkg",
        "rpm",
        "flatpak",
        "emerge",
        "cargo",
        "go",
        "conda",
        "mamba",
        "uv",
    }
)


def remote_package(inv: Invocation) -> list[Hit]:
    """`pip install https://...`: a package from a URL runs its build code unreviewed, unpinned."""
    argv = inv.argv
    runs = inv.program in ("npx", "bunx", "pnpx")  # runs the package it fetches
    installs = inv.program in ("pip", "pipx", "uv", "npm", "pnpm", "yarn", "gem")
    if not runs and not (installs and set(argv) & {"install", "add", "i"}):
        return []
    if "--dry-run" in argv:
        return []
    urls = [
        a
        for a in argv[1 if runs else 2 :]
        if re.match(r"^(?:git\+)?(?:https?|ftp)://", a.split("@", 1)[-1] if a.startswith(("git+",)) else a)
    ]
    if urls:
        return [
            approve(
                "remote-package",
                f"{inv.program} installs code straight from {urls[0][:60]}: its build scripts run unreviewed",
                "install a pinned release from the package index, or vendor the code for review",
            )
        ]
    return []


def sudo(inv: Invocation, policy: CommandsPolicy, hits: list[Hit]) -> list[Hit]:
    prog = inv.program
    if prog in _PACKAGE_MANAGERS:
        return [
            approve(
                "sudo-package-install",
                f"sudo {prog} changes system packages",
                "install into the workspace (a venv, node_modules) or bake it into the worker image",
            )
        ]
    if policy.approve_sudo and not hits:
        return [approve("sudo", f"{prog} runs as root", "run the command without raised privileges")]
    return []


def downloaded_files(inv: Invocation) -> list[str]:
    """Files a downloader writes (`curl -o f`, `wget -O f`, `curl url > f`), normalised."""
    if inv.program not in DOWNLOADERS:
        return []
    argv = inv.argv
    names = {"curl": ("-o", "--output"), "wget": ("-O", "--output-document")}.get(inv.program, ())
    found = [r.target.text for r in inv.redirects if r.target and r.op in (">", ">|", ">>")]
    for i, a in enumerate(argv[1:], start=1):
        if a in names and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif a.startswith(tuple(n + "=" for n in names if n.startswith("--"))):
            found.append(a.split("=", 1)[1])
    return [posixpath.normpath(f) for f in found if f and f != "-"]


def file_run(inv: Invocation) -> str | None:
    """The script file an invocation runs (`bash x.sh`, `python x.py`, `./x`, `source x`), normalised."""
    prog = inv.program
    if not inv.words:
        return None
    if prog in SHELLS or prog in INTERPRETERS:
        mode, word, _ = interp_mode(prog, inv.words[1:])
        return posixpath.normpath(word.text) if mode == "file" and word else None
    if prog in ("source", ".") and len(inv.words) > 1:
        return posixpath.normpath(inv.words[1].text)
    first = inv.words[0].text
    return posixpath.normpath(first) if "/" in first else None
