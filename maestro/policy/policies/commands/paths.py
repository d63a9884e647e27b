"""Where a path in a command points, relative to the task's workspace.

The workspace is the directory the task runs in. Inside it: relative paths that stay below it (`build`,
`./dist`, `a/../b`, `*`), `$PWD/...`, and absolute paths strictly below one of the policy's workspace
roots (`/tmp/x`, `/workspace/x`; never a root itself). Outside it: `/`, `~` and everything under it,
`~user`, `..` and paths that climb out, `.*` (older shells match `..`), every other absolute path. A path
whose start is only known at run time (`$DIR/x`, `$(cmd)`) is `variable`: it could be empty or `/`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Literal

from maestro.policy.policies.commands.words import Word

Scope = Literal[
    "workspace",
    "null",
    "root",
    "home",
    "dotfile",
    "authorized-keys",
    "sudoers",
    "system",
    "device",
    "network",
    "outside",
    "variable",
]
"""Where a path points, from harmless to catastrophic; `null` is /dev/null and the standard streams."""

_GLOB = "*?["
_SAFE_DEVICES = frozenset(
    {
        "/dev/null",
        "/dev/zero",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/stdin",
        "/dev/tty",
        "/dev/random",
        "/dev/urandom",
    }
)
_SENSITIVE_HOME = (
    ".ssh",
    ".aws",
    ".gnupg",
    ".kube",
    ".docker",
    ".config/gcloud",
    ".netrc",
    ".git-credentials",
)
_SENSITIVE_SYSTEM = ("/etc/shadow", "/etc/gshadow", "/etc/passwd", "/etc/sudoers", "/root")
_SENSITIVE_NAMES = frozenset({".env", "id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", "credentials", ".pgpass"})


def literal_prefix(text: str) -> str:
    """The part of a path before its first glob character."""
    cut = min((i for i in (text.find(c) for c in _GLOB) if i >= 0), default=len(text))
    return text[:cut]


def _under(path: str, roots: Iterable[str]) -> bool:
    """Whether path is a root or below one."""
    for root in roots:
        r = root.rstrip("/") or "/"
        if path == r or path.startswith(r.rstrip("/") + "/"):
            return True
    return False


def _strictly_under(path: str, roots: Iterable[str]) -> bool:
    for root in roots:
        r = root.rstrip("/")
        if r and path.startswith(r + "/") and path != r + "/":
            return True
    return False


def resolve(text: str, cwd: str | None) -> str:
    """A path made absolute or `~`-based when a `cd` moved outside; workspace-relative otherwise."""
    if cwd is not None and not text.startswith(("/", "~")):
        text = posixpath.join(cwd, text) if text else cwd
    return text


def scope(word: Word, cwd: str | None, workspace_roots: Iterable[str], system_paths: Iterable[str]) -> Scope:
    """Where a path argument points."""
    if word.dynamic and (word.text.startswith(("$", "`")) or not word.text or word.guarded):
        return "variable"
    if cwd == "$" and not word.text.startswith(("/", "~")):
        return "variable"
    return scope_of(resolve(word.text, cwd), workspace_roots, system_paths)


def scope_of(text: str, workspace_roots: Iterable[str], system_paths: Iterable[str]) -> Scope:
    """Where a literal path points."""
    if text.startswith("$"):
        return "variable"
    raw = text
    text = literal_prefix(text)
    globbed = text != raw
    if text.startswith("~"):
        user, _, rest = text[1:].partition("/")
        if user:
            return "outside"
        rest = posixpath.normpath(rest) if rest else ""
        if rest in ("", ".") or rest.startswith(".."):
            return "home"
        if rest.startswith(".ssh/authorized_keys") or rest.endswith("/authorized_keys"):
            return "authorized-keys"
        if rest.startswith("."):
            return "dotfile"
        return "outside"
    if text.startswith("/"):
        path = posixpath.normpath(text)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if path == "/" or (globbed and path in ("/", "/.")):
            return "root"
        if path in _SAFE_DEVICES or path.startswith("/dev/fd/") or path.startswith("/proc/self/fd/"):
            return "null"
        if path.startswith(("/dev/tcp/", "/dev/udp/")):
            return "network"
        if path.startswith("/dev/"):
            return "device"
        if path.endswith("/authorized_keys") or path.endswith("/authorized_keys2"):
            return "authorized-keys"
        if path == "/etc/sudoers" or path.startswith("/etc/sudoers.d"):
            return "sudoers"
        if _under(path, system_paths):
            return "system"
        if _strictly_under(path, workspace_roots):
            return "workspace"
        if path.startswith("/home/") or path.startswith("/Users/"):
            parts = path.split("/")
            if len(parts) <= 3:
                return "home"
            return "dotfile" if parts[3].startswith(".") else "outside"
        return "outside"
    if raw.startswith(".*") or "/.*" in raw:
        return "outside"
    path = posixpath.normpath(text) if text else "."
    if path == ".." or path.startswith("../"):
        return "outside"
    return "workspace"


def is_sensitive(text: str) -> bool:
    """Whether a file holds credentials or identities (keys, cloud credentials, shadow, .env)."""
    path = posixpath.normpath(text) if text else ""
    if path.startswith("~/"):
        rest = path[2:]
        if any(rest == s or rest.startswith(s + "/") for s in _SENSITIVE_HOME):
            return True
    if any(path == s or path.startswith(s + "/") for s in _SENSITIVE_SYSTEM):
        return True
    if "/.ssh/" in path or path.startswith(".ssh/"):
        return True
    name = posixpath.basename(path)
    return name in _SENSITIVE_NAMES or name.endswith((".pem", ".key")) or name.startswith(".env.")
