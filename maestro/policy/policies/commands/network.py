"""Rules for what a command opens to or sends over the network: reverse shells and exfiltration.

A program wired to a connection (`nc -e`, `socat exec:`) is a remote shell; credentials, key files or
the environment sent anywhere (uploaded as a file or form field, piped into a client, substituted into
a URL or a DNS name) are exfiltration.

Sources: GTFOBins (file upload and reverse-shell functions of nc, socat, curl, wget, scp, rsync);
MITRE ATT&CK T1048 (exfiltration over alternative protocol, DNS included), T1552.001 (credentials in files).
"""

from __future__ import annotations

import re

import re2

from maestro.policy.policies.commands.exec import DOWNLOADERS, ENV_DUMPERS, NETWORK, SECRET_READERS
from maestro.policy.policies.commands.hits import Hit, deny
from maestro.policy.policies.commands.paths import is_sensitive
from maestro.policy.policies.commands.words import Invocation, program_name

_SECRET_PRODUCER = re2.compile(
    r"^(?:\S*/)?(?:gpg2? .*--export-secret-|kubectl config view .*--raw|"
    r"gcloud auth print-(?:access|identity)-token|az account get-access-token|"
    r"aws configure export-credentials|"
    r"aws sts get-session-token|vault (?:read|kv get)|security find-(?:generic|internet)-password|op read|"
    r"gh auth token|heroku auth:token)"
)


def reverse_shell(inv: Invocation) -> list[Hit]:
    prog, argv = inv.program, inv.argv
    if prog in ("nc", "ncat", "netcat") and {"-e", "-c", "--exec", "--sh-exec", "--lua-exec"} & set(
        "-" + c for a in argv[1:] if a.startswith("-") and not a.startswith("--") for c in a[1:]
    ) | {a for a in argv if a.startswith("--")}:
        return [deny("reverse-shell", f"{prog} runs a program for whoever connects", "do not expose a shell")]
    if prog == "socat" and any(re.match(r"(?i)(exec|system):", a) for a in argv[1:]):
        return [deny("reverse-shell", "socat connects a program to the network", "do not expose a shell")]
    return []


_DNS = frozenset({"dig", "nslookup", "host", "drill", "ping", "resolvectl", "getent"})


def _leaks(argv: tuple[str, ...]) -> bool:
    """Whether a substituted command reads a credential file or dumps the environment."""
    if not argv:
        return False
    p = program_name(argv[0])
    return (p in ENV_DUMPERS and len(argv) == 1) or (
        p in SECRET_READERS | {"sed", "awk", "grep", "openssl"} and any(is_sensitive(a) for a in argv[1:])
    )


def exfiltration(inv: Invocation) -> list[Hit]:
    prog, argv = inv.program, inv.argv
    if prog not in DOWNLOADERS | NETWORK | _DNS | {"scp", "rsync", "sftp", "ssh"}:
        return []
    fix = "never send credentials or key files off the host"
    if any(_leaks(s) for w in inv.words[1:] for s in w.substs):
        how = "in DNS queries" if prog in _DNS else "in its request"
        return [deny("exfiltration", f"{prog} sends a credential or the environment {how}", fix)]
    if prog in _DNS:
        return []
    sent: list[str] = []
    for i, a in enumerate(argv[1:], start=1):
        for prefix in ("@", "<"):
            if prefix in a:
                sent.append(a.split(prefix, 1)[1].split(";", 1)[0])
        if a in ("-T", "--upload-file", "--post-file", "--body-file") and i + 1 < len(argv):
            sent.append(argv[i + 1])
        if a.startswith(("--post-file=", "--body-file=")):
            sent.append(a.split("=", 1)[1])
    if prog in ("scp", "rsync", "sftp") and any(":" in a and not a.startswith("-") for a in argv[1:]):
        sent.extend(a for a in argv[1:] if not a.startswith("-"))
    sent.extend(r.target.text for r in inv.redirects if r.op == "<" and r.target)
    if any(is_sensitive(p) for p in sent if p):
        return [deny("exfiltration", f"{prog} uploads a credential or key file", fix)]
    for up in inv.upstream:
        if not up:
            continue
        if _SECRET_PRODUCER.search(" ".join(up[:6])):
            return [deny("exfiltration", f"{prog} sends a secret another tool prints ({up[0]})", fix)]
        p = program_name(up[0])
        if (p in ENV_DUMPERS and len(up) == 1) or (
            p in SECRET_READERS and any(is_sensitive(a) for a in up[1:])
        ):
            return [deny("exfiltration", f"{prog} sends credentials or the environment piped from {p}", fix)]
    return []
