"""Rules for what a command does to files, devices and the host, and the dispatch of every rule.

`judge(invocation, policy)` returns the Hits of one invocation and the Nested code it runs (a `bash -c`
string, a `python -c` program, an echoed script piped into a shell), which the caller judges in turn.
Shells and interpreters are judged in commands_exec; tools with their own vocabulary (git, kubectl,
terraform, SQL clients, docker, publishers, sync commands) in commands_tools.
"""

from __future__ import annotations

import re

from maestro.policy.policies.commands import cmdexe, host, network, schedule, windows
from maestro.policy.policies.commands import exec as run
from maestro.policy.policies.commands import tools as tools
from maestro.policy.policies.commands.args import command_start, parse_args
from maestro.policy.policies.commands.config import CommandsPolicy
from maestro.policy.policies.commands.hits import Hit, Nested, NestedKind, approve, deny, write_hit
from maestro.policy.policies.commands.paths import Scope, scope
from maestro.policy.policies.commands.words import Invocation, Word, program_name

_DELETERS = frozenset({"rm", "shred", "unlink", "rmdir"})
_DELETE_FIX = "delete only paths inside the task's workspace (./build, node_modules)"
_VAR_FIX = (
    'guard the variable (`${DIR:?}`), or name the path literally; an empty variable turns "$DIR/" into /'
)


def _recursive_delete(inv: Invocation, targets: list[Word], verb: str, policy: CommandsPolicy) -> list[Hit]:
    """Judge the targets of a recursive delete (or chmod/chown)."""
    worst: tuple[Scope, str] | None = None
    for t in targets:
        s = scope(t, inv.cwd, policy.workspace_roots, policy.system_paths)
        if s in ("workspace", "null") or (s == "variable" and _guarded_below(t)):
            continue
        if worst is None or (worst[0] == "variable" and s != "variable"):
            worst = (s, t.text)
    if worst is None:
        return []
    s, path = worst
    rule = "recursive-delete" if verb == "delete" else "recursive-permission-change"
    if s == "variable":
        return [
            approve(
                f"{rule}-variable-path",
                f"recursive {verb} of {path}: the path depends on a variable "
                "or command output that could be empty or /",
                _VAR_FIX,
                "high",
            )
        ]
    where = {"root": "the filesystem root", "home": "the home directory"}.get(
        s, "a path outside the workspace"
    )
    return [deny(f"{rule}-outside-workspace", f"recursive {verb} of {path}: {where}", _DELETE_FIX)]


def _guarded_below(word: Word) -> bool:
    """`"${DIR:?}/"*`: a `:?`-guarded variable cannot expand to nothing, and what follows it is below it.

    The guard is what the variable-path rule's own fix asks for; a bare `${DIR:?}` (which could still be
    `/`) or an unguarded part anywhere in the word stays a variable path.
    """
    below = word.text.split("}", 1)[-1]
    return word.guarded and not word.substs and "/" in below and ".." not in below


def _rm(inv: Invocation, policy: CommandsPolicy) -> list[Hit]:
    args = parse_args(inv.argv[1:])
    recursive = args.has("-r", "-R", "--recursive")
    targets = [w for w in inv.words[1:] if w.text in args.positional]
    if inv.xargs:
        extra = run.xargs_targets(inv)
        if extra is None and recursive:
            return [
                approve(
                    "recursive-delete-variable-path",
                    "recursive delete of paths read from a pipe",
                    _VAR_FIX,
                    "high",
                )
            ]
        targets += extra or []
    if recursive:
        return _recursive_delete(inv, targets, "delete", policy)
    hits: list[Hit] = []
    for t in targets:
        s = scope(t, inv.cwd, policy.workspace_roots, policy.system_paths)
        hit = write_hit(s, t.text, "deletes") if s not in ("home", "outside", "dotfile") else None
        if hit:
            hits.append(hit)
    return hits


def _find(inv: Invocation, policy: CommandsPolicy) -> tuple[list[Hit], list[Nested]]:
    argv = inv.argv
    starts = run.find_starts(argv[1:])
    deletes = "-delete" in argv
    nested: list[Nested] = []
    for i, a in enumerate(argv):
        if a in ("-exec", "-execdir", "-ok", "-okdir") and i + 1 < len(argv):
            end = next((j for j in range(i + 1, len(argv)) if argv[j] in (";", "+", "\\;")), len(argv))
            cmd = tuple(starts[0] if x == "{}" else x for x in argv[i + 1 : end])
            if cmd and program_name(cmd[0]) in _DELETERS:
                deletes = True
            elif cmd:
                nested.append(Nested("argv", argv=cmd, sudo=inv.sudo))
    if not deletes:
        return [], nested
    return _recursive_delete(inv, [Word(s) for s in starts], "delete", policy), nested


def _perms(inv: Invocation, policy: CommandsPolicy) -> list[Hit]:
    args = parse_args(inv.argv[1:], frozenset({"--reference", "--from"}))
    operands = [w for w in inv.words[1:] if w.text in args.positional]
    if not args.has("--reference"):
        operands = operands[1:]
    if args.has("-R", "--recursive"):
        return _recursive_delete(inv, operands, "permission change", policy)
    hits = []
    for t in operands:
        s = scope(t, inv.cwd, policy.workspace_roots, policy.system_paths)
        if s in ("system", "sudoers", "authorized-keys", "root", "device"):
            hits.append(
                deny(
                    "system-file-write", f"{inv.program} changes {t.text}: system files", _DELETE_FIX, "high"
                )
            )
    return hits


def _devices(inv: Invocation, policy: CommandsPolicy) -> list[Hit]:
    prog, argv = inv.program, inv.argv
    if prog == "dd":
        hits = []
        for a in argv[1:]:
            if a.startswith("of="):
                hit = write_hit(
                    scope(Word(a[3:]), inv.cwd, policy.workspace_roots, policy.system_paths), a[3:]
                )
                if hit:
                    hits.append(hit)
        return hits
    if prog in ("fdisk", "sfdisk", "parted", "sgdisk", "gdisk", "cfdisk"):
        if {"-l", "--list", "-d", "--dump", "print", "-p", "--print"} & set(argv):
            return []
        if any(a.startswith("/dev/") for a in argv):
            return [
                deny("disk-format", f"{prog} rewrites a disk's partition table", "partition an image file")
            ]
        return []
    args = parse_args(argv[1:], frozenset({"-t", "-L", "-O", "-b", "-o", "-E", "-U", "-c", "-n"}))
    for t in args.positional:
        s = scope(Word(t), inv.cwd, policy.workspace_roots, policy.system_paths)
        if s in ("workspace", "null") or (prog == "shred" and s == "variable"):
            continue
        if prog == "shred":
            if s == "device":
                return [
                    deny("device-write", f"shred overwrites the device {t}", "shred files in the workspace")
                ]
            return [
                deny("shred-outside-workspace", f"shred destroys {t}, outside the workspace", _DELETE_FIX)
            ]
        return [
            deny(
                "disk-format",
                f"{prog} formats {t}: everything on it is lost",
                "format an image file in the workspace (mkfs.ext4 ./disk.img)",
            )
        ]
    return []


def _kill(argv: tuple[str, ...]) -> list[Hit]:
    pids: list[str] = []
    signal_seen = False
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "--":
            pids.extend(argv[i + 1 :])
            break
        if a in ("-s", "-n"):
            signal_seen, i = True, i + 2
            continue
        if a.startswith("-") and not signal_seen and a not in ("-1",):
            signal_seen = True
        elif a.startswith("-") and a in ("-l", "-L"):
            return []
        else:
            pids.append(a)
        i += 1
    if "-1" in pids or "1" in pids:
        return [
            deny("kill-all", "kill signals every process (pid -1) or init (pid 1)", "kill a specific pid")
        ]
    return []


def _system(inv: Invocation) -> list[Hit]:
    prog, argv = inv.program, inv.argv
    down = "shuts down or reboots the host"
    if prog in ("shutdown", "reboot", "halt", "poweroff") and not {"-c", "/a", "/A"} & set(argv):
        return [deny("shutdown", f"{prog} {down}", "never stop the host from a task")]
    if prog in ("init", "telinit") and argv[1:2] in (("0",), ("6",)):
        return [deny("shutdown", f"{prog} {argv[1]} {down}", "never stop the host from a task")]
    if prog == "systemctl":
        sub = [a for a in argv[1:] if not a.startswith("-")]
        if sub[:1] and sub[0] in (
            "poweroff",
            "reboot",
            "halt",
            "kexec",
            "emergency",
            "rescue",
            "soft-reboot",
        ):
            return [deny("shutdown", f"systemctl {sub[0]} {down}", "never stop the host from a task")]
        units = " ".join(sub[1:])
        if (
            sub[:1]
            and sub[0] in ("stop", "disable", "mask", "kill")
            and re.search(r"\b(firewalld|ufw|nftables|iptables|apparmor)\b", units)
        ):
            return [
                deny(
                    "firewall-disable",
                    f"systemctl {sub[0]} {units} turns off the host firewall",
                    "change firewall rules through reviewed configuration",
                )
            ]
    if prog in ("killall5",):
        return [deny("kill-all", "killall5 signals every process", "kill a specific pid")]
    if prog == "kill":
        return _kill(argv)
    fw_fix = "change firewall rules through reviewed configuration"
    if prog.startswith(("iptables", "ip6tables")) and (
        {"-F", "--flush"} & set(argv) or ("-P" in argv and "ACCEPT" in argv)
    ):
        return [deny("firewall-disable", f"{prog} flushes or opens the firewall", fw_fix)]
    if prog == "ufw" and {"disable", "reset"} & set(argv):
        return [deny("firewall-disable", "ufw turns the firewall off", fw_fix)]
    if (prog.startswith(("iptables", "ip6tables")) and {"-A", "-I"} & set(argv) and "ACCEPT" in argv) or (
        prog == "ufw" and "allow" in argv
    ):
        return [approve("firewall-change", f"{prog} opens the firewall", fw_fix, "high")]
    if prog in ("pkill", "killall") and any(
        a in ("root", "0") and argv[i - 1] in ("-u", "--user", "-U") for i, a in enumerate(argv) if i
    ):
        return [deny("kill-all", f"{prog} signals every process of root", "kill a specific pid")]
    if prog == "nft" and "flush" in argv and "ruleset" in argv:
        return [deny("firewall-disable", "nft flush ruleset removes every firewall rule", fw_fix)]
    if prog == "crontab":
        args = parse_args(argv[1:], frozenset({"-u"}))
        if args.has("-r", "--remove"):
            return [
                deny(
                    "crontab-remove",
                    "crontab -r deletes every scheduled job without asking",
                    "edit the crontab (crontab -l > file; edit; crontab file)",
                )
            ]
        if args.positional:
            return [
                approve(
                    "persistence",
                    "crontab installs scheduled jobs that outlive the task",
                    "schedule work through the orchestrator",
                )
            ]
    return []


def _writes(inv: Invocation, policy: CommandsPolicy) -> list[Hit]:
    """Files a command writes: redirections, tee, cp/mv/install destinations, curl -o, sed -i."""
    targets: list[Word] = [
        r.target for r in inv.redirects if r.target and r.op in (">", ">>", ">|", "&>", "&>>", ">&", "<>")
    ]
    prog, argv = inv.program, inv.argv
    if prog == "tee":
        targets += [w for w in inv.words[1:] if not w.text.startswith("-")]
    elif prog in ("cp", "mv", "install", "ln", "rsync", "scp"):
        args = parse_args(argv[1:], frozenset({"-t", "--target-directory", "-m", "-o", "-g", "-S", "-e"}))
        dest = args.value("-t", "--target-directory") or (
            args.positional[-1] if len(args.positional) > 1 else None
        )
        if dest and not (prog in ("rsync", "scp") and ":" in dest):
            targets.append(next((w for w in inv.words if w.text == dest), Word(dest)))
    elif prog in ("curl", "wget"):
        args = parse_args(
            argv[1:], frozenset({"-o", "--output", "-O", "--output-document", "-H", "-d", "-X", "-u"})
        )
        out = args.value("-o", "--output") if prog == "curl" else args.value("-O", "--output-document")
        if out and out != "-":
            targets.append(Word(out))
    elif prog in ("sed", "perl") and any(a.startswith("-i") or a == "--in-place" for a in argv[1:]):
        args = parse_args(argv[1:], frozenset({"-e", "-f"}))
        files = args.positional if args.has("-e", "-f") else args.positional[1:]
        targets += [Word(f) for f in files]
    elif prog in ("truncate", "touch", "chattr") or (prog == "tar" and any("x" in a for a in argv[1:2])):
        args = parse_args(argv[1:], frozenset({"-s", "-r", "-C", "--directory", "-f"}))
        where = args.value("-C", "--directory")
        targets += (
            [Word(where)] if prog == "tar" and where else [Word(p) for p in args.positional if prog != "tar"]
        )
    targets += [
        r.target
        for r in inv.redirects
        if r.target and r.op == "<" and r.target.text.startswith(("/dev/tcp/", "/dev/udp/"))
    ]
    hits: list[Hit] = []
    for t in targets:
        hit = write_hit(scope(t, inv.cwd, policy.workspace_roots, policy.system_paths), t.text)
        if hit and hit not in hits:
            hits.append(hit)
    return hits


def judge(inv: Invocation, policy: CommandsPolicy) -> tuple[list[Hit], list[Nested]]:
    """The Hits of one invocation and the code it runs that must be judged next."""
    hits: list[Hit] = []
    nested: list[Nested] = []
    prog = inv.program
    words = inv.words
    if not prog:
        return hits, nested
    if prog in ("powershell", "pwsh", "cmd"):
        for item in windows.launcher(prog, inv.argv[1:], inv.upstream):
            if isinstance(item, Hit):
                hits.append(item)
            else:
                nested.append(item)
    elif prog in run.SHELLS or prog in run.INTERPRETERS:
        kind: NestedKind = "shell" if prog in run.SHELLS else run.INTERPRETERS[prog]
        mode, code, module = run.interp_mode(prog, words[1:] if prog != "busybox" else words[2:])
        if mode == "module" and module:
            nested.append(Nested("argv", argv=module, sudo=inv.sudo))
        else:
            for item in run.executes(inv, prog, kind, mode, code):
                if isinstance(item, Hit):
                    hits.append(item)
                else:
                    nested.append(item)
    elif prog in ("eval", "source", ".", "su", "watch", "script", "runuser"):
        hits += run.eval_like(inv, nested)
    elif prog == "ssh":
        start = command_start(inv.argv[1:], frozenset("-" + c for c in "bcDEeFIiJLlmOoPpQRSWw")) + 1
        if len(inv.argv) > start + 1:
            nested.append(Nested("shell", " ".join(inv.argv[start + 1 :])))
    elif prog == "rm":
        hits += _rm(inv, policy)
    elif prog == "find":
        found, more = _find(inv, policy)
        hits += found
        nested += more
    elif prog in ("chmod", "chown", "chgrp"):
        hits += _perms(inv, policy)
    elif (
        prog == "dd"
        or prog == "shred"
        or prog.startswith(("mkfs", "mke2fs", "mkswap", "wipefs"))
        or prog in ("fdisk", "sfdisk", "parted", "sgdisk", "gdisk", "cfdisk")
    ):
        hits += _devices(inv, policy)
    elif prog in cmdexe.NATIVE:
        hits += [h for h in cmdexe.judge(prog, inv.argv[1:]) if isinstance(h, Hit)]
    else:
        found_tools, more = tools.judge(inv, policy)
        hits += found_tools
        nested += more
    hits += _system(inv) + network.reverse_shell(inv) + network.exfiltration(inv) + _writes(inv, policy)
    hits += host.environ(inv) + host.tampering(inv) + host.accounts(inv) + host.admin(inv)
    hits += run.remote_package(inv)
    nested += schedule.scheduled(inv) + schedule.feeds_scheduler(inv)
    if inv.xargs and prog in run.SHELLS and not hits:
        hits.append(
            approve(
                "xargs-shell", "xargs runs a shell on input it reads from a pipe", "run the commands directly"
            )
        )
    if inv.sudo and not any(h.action == "deny" for h in hits):
        hits += run.sudo(inv, policy, hits)
    return hits, nested
