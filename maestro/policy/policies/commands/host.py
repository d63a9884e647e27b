"""Rules for the host's accounts, its audit trail, other processes' secrets and key-value stores.

Granting privilege (a uid-0 or sudo-group account, a password change, editing sudoers), destroying
evidence (shell history, logs, the audit rules and journal), reading another process's environment
(where the agent's tokens live) and wiping key-value stores (Redis FLUSHALL, etcd prefix deletes,
Cassandra drops) are judged here.

Sources: shadow-utils and sudo manual pages, bash's `history`/`HISTFILE`, auditctl(8), journalctl(1),
proc(5), redis-cli and the Redis command reference, etcdctl v3, cqlsh; MITRE ATT&CK T1070 (indicator
removal), T1098 (account manipulation), T1552.007/T1057 (process environment).
"""

from __future__ import annotations

import re2

from maestro.policy.policies.commands.args import parse_args
from maestro.policy.policies.commands.hits import Hit, Nested, approve, deny
from maestro.policy.policies.commands.words import Invocation

_ENVIRON = re2.compile(r"^/proc/(?:[^/]+)/(?:task/[^/]+/)?environ$")
_HISTORY = re2.compile(r"(?:^|/)\.(?:bash|zsh|sh|ksh|fish|python|mysql|psql|node_repl|lesshst)_?history$")
_LOGS = re2.compile(r"^/var/log(?:/|$)|^/var/audit|\.log(?:\.\d+)?$|^/var/run/utmp$|^/var/log/wtmp$")
_PRIVILEGED_GROUPS = frozenset({"sudo", "wheel", "admin", "root", "docker"})
_TAMPER_FIX = "leave history, logs and audit rules alone; they are the record of what the task did"
_PRIV_FIX = "ask an operator to change accounts and privileges"
_ENV_FIX = "read only the variables the task was given, by name"


def environ(inv: Invocation) -> list[Hit]:
    """Reading /proc/<pid>/environ (any process's, the parent's, its own) or `ps e` environments."""
    texts = [w.text for w in inv.words[1:]] + [r.target.text for r in inv.redirects if r.target]
    if any(_ENVIRON.match(t.replace("*", "x")) for t in texts):
        return [
            deny(
                "process-environment",
                f"{inv.program} reads a process's environment: the agent's tokens and keys",
                _ENV_FIX,
                "high",
            )
        ]
    if inv.program == "ps" and any(
        not a.startswith("-") and "e" in a and re2.fullmatch(r"[a-zA-Z]+", a) for a in inv.argv[1:]
    ):
        return [
            deny(
                "process-environment",
                "ps e prints every process's environment: the agent's tokens and keys",
                _ENV_FIX,
                "high",
            )
        ]
    return []


def tampering(inv: Invocation) -> list[Hit]:
    """Erasing the record: history, logs, the journal, audit rules."""
    prog, argv = inv.program, inv.argv
    why = ""
    if prog == "history" and {"-c", "-w", "-d"} & set(argv) and "-c" in argv:
        why = "history -c erases the shell history"
    elif prog == "set" and "+o" in argv and "history" in argv:
        why = "set +o history stops recording the shell history"
    elif prog == "unset" and {"HISTFILE", "HISTSIZE"} & set(argv):
        why = "unset HISTFILE stops recording the shell history"
    elif prog in ("export", "set") and any(
        re2.match(r"HIST(FILE|SIZE|FILESIZE)=(/dev/null|0)?$", a) for a in argv
    ):
        why = "the shell history is switched off"
    elif prog in ("rm", "shred", "unlink", "truncate") and any(_HISTORY.search(a) for a in argv[1:]):
        why = f"{prog} destroys a shell history file"
    elif prog in ("rm", "shred", "unlink", "truncate") and any(
        _LOGS.search(a) and a.startswith("/") for a in argv[1:]
    ):
        why = f"{prog} destroys system logs"
    elif prog == "journalctl" and any(a.startswith(("--vacuum", "--rotate", "--flush")) for a in argv):
        if any(a.startswith("--vacuum") for a in argv):
            why = "journalctl --vacuum deletes the system journal"
    elif prog == "auditctl" and {"-D", "-e"} & set(argv):
        if "-D" in argv or argv[argv.index("-e") + 1 : argv.index("-e") + 2] == ("0",):
            why = "auditctl deletes or disables the audit rules"
    elif prog == "setenforce" and argv[1:2] in (("0",), ("Permissive",), ("permissive",)):
        why = "setenforce 0 turns SELinux off"
    elif prog in ("wevtutil",) and any(a.lower() in ("cl", "clear-log") for a in argv[1:]):
        why = "wevtutil cl clears a Windows event log"
    if prog in ("ln",) and any(_HISTORY.search(a) for a in argv[1:]) and "/dev/null" in argv:
        why = "the shell history is linked to /dev/null"
    if not why:
        redirected = [r.target.text for r in inv.redirects if r.target and r.op in (">", ">|")]
        if any(_HISTORY.search(t) or (t.startswith("/var/log") and _LOGS.search(t)) for t in redirected):
            why = "a redirection empties a history or log file"
    return [deny("evidence-tampering", why, _TAMPER_FIX, "high")] if why else []


def accounts(inv: Invocation) -> list[Hit]:
    """Creating privileged accounts, changing passwords, editing sudoers."""
    prog, argv = inv.program, inv.argv
    if "--help" in argv or "-h" in argv[1:2]:
        return []
    if prog in ("useradd", "adduser", "usermod", "groupmod"):
        args = parse_args(
            argv[1:],
            frozenset({"-u", "-g", "-G", "-s", "-d", "-c", "-e", "-p", "-k", "--uid", "--gid", "--groups"}),
        )
        groups = {g for v in args.all_values("-G", "-g", "--groups", "--gid") for g in v.split(",")}
        if args.value("-u", "--uid") == "0" or groups & _PRIVILEGED_GROUPS:
            return [
                deny("privilege-grant", f"{prog} creates or makes a root or sudo-capable account", _PRIV_FIX)
            ]
        if prog == "adduser" and len(args.positional) == 2 and args.positional[1] in _PRIVILEGED_GROUPS:
            return [
                deny("privilege-grant", f"adduser adds {args.positional[0]} to a privileged group", _PRIV_FIX)
            ]
        return [approve("account-change", f"{prog} changes the host's accounts", _PRIV_FIX, "high")]
    if prog in ("gpasswd",) and _PRIVILEGED_GROUPS & set(argv) and "-a" in argv:
        return [deny("privilege-grant", "gpasswd adds a user to a privileged group", _PRIV_FIX)]
    if prog in ("visudo", "sudoedit") or (prog == "vi" and "/etc/sudoers" in argv):
        if "-c" in argv:
            return []
        return [deny("sudoers-write", f"{prog} edits sudoers (who may become root)", _PRIV_FIX)]
    if prog in ("passwd", "chpasswd", "usermod") or (prog == "userdel"):
        if prog == "passwd" and {"-S", "--status"} & set(argv):
            return []
        return [
            approve("account-change", f"{prog} changes the host's accounts or passwords", _PRIV_FIX, "high")
        ]
    if prog == "setcap" or (
        prog == "chmod" and any(re2.fullmatch(r"[ugoa]*\+s|[4267]\d{3}", a) for a in argv[1:])
    ):
        return [
            approve(
                "privilege-grant", f"{prog} makes a program run with raised privileges", _PRIV_FIX, "high"
            )
        ]
    return []


_REDIS_WIPE = frozenset({"FLUSHALL", "FLUSHDB", "SHUTDOWN", "DEBUG", "SWAPDB", "SCRIPT"})


def admin(inv: Invocation) -> list[Hit]:
    """Database admin tools and search-engine APIs that drop a whole database or every index."""
    prog, argv = inv.program, inv.argv
    fix = "drop named objects through a reviewed migration, or let an operator run it"
    if "--help" in argv:
        return []
    positional = [a for a in argv[1:] if not a.startswith("-")]
    if prog in ("dropdb", "pg_dropcluster") or (prog == "mysqladmin" and "drop" in positional):
        return [deny("sql-drop-database", f"{prog} drops a whole database", fix)]
    if prog in ("curl", "http", "https", "wget"):
        method = next(
            (argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-X", "--request", "--method")), ""
        ) or next((a[2:] for a in argv if a.startswith("-X") and len(a) > 2), "")
        urls = [a for a in positional if re2.search(r"^(?:https?://)?[\w.-]+(?::\d+)?/", a)]
        if method.upper() == "DELETE" and any(
            re2.search(r"/(?:_all|\*|[^/?]*\*[^/?]*)/?(?:\?|$)", u) for u in urls
        ):
            return [deny("store-wipe", f"{prog} -X DELETE of every index (_all or *)", fix)]
    return []


def key_value(inv: Invocation) -> tuple[list[Hit], list[Nested]]:
    """Redis, etcd, Consul and Cassandra clients: wiping a store, deleting a whole prefix."""
    prog, argv = inv.program, inv.argv
    fix = "delete named keys, or let an operator run it"
    if prog in ("redis-cli", "valkey-cli", "keydb-cli"):
        args = parse_args(argv[1:], frozenset({"-h", "-p", "-a", "-n", "-u", "--user", "--pass", "-s"}))
        words = [a.upper() for a in args.positional]
        if words[:1] and words[0] in ("FLUSHALL", "FLUSHDB"):
            return [deny("store-wipe", f"redis-cli {words[0]} deletes every key", fix)], []
        if words[:2] == ["CONFIG", "SET"] and len(words) > 2 and words[2] in ("DIR", "DBFILENAME"):
            return [deny("store-wipe", "redis CONFIG SET dir/dbfilename writes files on the host", fix)], []
        if inv.stdin_text and re2.search(r"(?im)^\s*FLUSH(ALL|DB)\b", inv.stdin_text):
            return [deny("store-wipe", "FLUSHALL/FLUSHDB fed to redis-cli deletes every key", fix)], []
        return [], []
    if prog == "etcdctl":
        path = [a for a in argv[1:] if not a.startswith("-")]
        if path[:1] in (["del"], ["rm"]) and ("--prefix" in argv or "--from-key" in argv):
            return [deny("store-wipe", "etcdctl del --prefix deletes every key under the prefix", fix)], []
        if path[:1] == ["rmdir"] or (path[:1] == ["rm"] and "--recursive" in argv):
            return [deny("store-wipe", "etcdctl removes a whole directory of keys", fix)], []
    if prog == "consul" and argv[1:3] == ("kv", "delete") and "-recurse" in argv:
        return [deny("store-wipe", "consul kv delete -recurse deletes every key under the prefix", fix)], []
    if prog == "cqlsh":
        texts = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-e", "--execute")]
        texts += [inv.stdin_text] if inv.stdin_text else []
        return [], [Nested("sql", t) for t in texts]
    return [], []
