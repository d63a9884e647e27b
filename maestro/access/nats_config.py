"""A nats-server configuration with Maestro's accounts and users, and one credentials file per user.

The server's configuration holds public keys only (nkeys: ed25519 keys as NATS encodes them); each principal
(maestro/access/nats_permissions.py) gets a seed file of its own, readable by its owner alone, which a
process names in MAESTRO_NATS_CREDS. Writing again keeps every seed there is and adds the principals that
have none (new tenants), so a running mesh is never locked out by it.

The accounts: `MAESTRO`, with JetStream, holding every principal with its permissions; and `SYS`, the
server's system account (for monitoring), with a `system` user.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import nkeys

from maestro import topics
from maestro.access import nats_permissions
from maestro.access.nats_permissions import Permissions

CONFIG_FILE = "nats-server.conf"
SEED_SUFFIX = ".nk"
MAESTRO_ACCOUNT = "MAESTRO"
SYSTEM_ACCOUNT = "SYS"
SYSTEM_USER = "system"
"""The user of the server's system account (it is no principal of Maestro's: it sees no Maestro subject)."""


class CredentialsError(ValueError):
    """A credentials file is missing or holds no user seed; the text names it."""


@dataclass(frozen=True)
class Identity:
    """What a process presents to NATS: its seed, and the inbox prefix its permissions give it."""

    seed: str
    public_key: str

    @property
    def inbox_prefix(self) -> str:
        """Where this user's replies come (only it may subscribe below it)."""
        return topics.inbox_prefix(self.public_key)


def new_seed() -> str:
    """A fresh user seed (`SU...`)."""
    seed: bytes = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode()


def identity(seed: str) -> Identity:
    """The identity a seed gives; raises CredentialsError when it is no user seed."""
    try:
        pair = nkeys.from_seed(bytearray(seed.strip().encode()))
        public = pair.public_key.decode()
    except Exception as exc:  # nkeys raises its own errors, and binascii's on garbage
        raise CredentialsError(f"not an nkey user seed: {exc!r}") from None
    if not public.startswith("U"):
        raise CredentialsError("not an nkey user seed (its public key does not start with U)")
    return Identity(seed.strip(), public)


def read_identity(path: Path) -> Identity:
    """The identity in a credentials file (a seed file, as `maestro nats-config` writes and nats-py reads);
    raises CredentialsError naming the file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CredentialsError(f"cannot read NATS credentials {path}: {exc.strerror}") from None
    try:
        return identity(text)
    except CredentialsError as exc:
        raise CredentialsError(f"{path}: {exc}") from None


def _user(public_key: str, permissions: Permissions) -> dict[str, object]:
    rules: dict[str, object] = {
        "publish": {"allow": list(permissions.publish), "deny": list(permissions.publish_deny)},
        "subscribe": {"allow": list(permissions.subscribe), "deny": list(permissions.subscribe_deny)},
    }
    if permissions.responses:
        rules["allow_responses"] = True
    return {"nkey": public_key, "permissions": rules}


def render(users: Mapping[str, str], system_key: str) -> str:
    """The server configuration for these principals (name: public key) and the system user's key."""
    lines = [
        "# Written by `maestro nats-config`: Maestro's accounts and users (public keys only; each user's",
        "# seed is in <principal>.nk beside this file). Run: nats-server -c nats-server.conf -js -sd <store>",
        "accounts {",
        f"  {MAESTRO_ACCOUNT} {{",
        "    jetstream: enabled",
        "    users: [",
    ]
    for principal, key in users.items():
        rules = nats_permissions.permissions(principal, topics.inbox_prefix(key))
        lines += [f"      # {principal}", f"      {json.dumps(_user(key, rules))}"]
    lines += [
        "    ]",
        "  }",
        f"  {SYSTEM_ACCOUNT} {{",
        f"    users: [{json.dumps({'nkey': system_key})}]",
        "  }",
        "}",
        f"system_account: {SYSTEM_ACCOUNT}",
        "",
    ]
    return "\n".join(lines)


def seed_file(out: Path, principal: str) -> Path:
    """Where the seed of a principal (or of the system user) is kept under `out`."""
    return out / f"{principal}{SEED_SUFFIX}"


def write(out: Path, tenants: Iterable[str] = ()) -> list[str]:
    """Write the configuration and a seed per principal into `out`, keeping every seed already there (and
    every tenant that has one); the principals written, in order. Raises CredentialsError for a seed file
    that cannot be read, ValueError for a tenant name that is no subject token."""
    out.mkdir(parents=True, exist_ok=True)
    known = {
        principal
        for path in out.glob(f"{nats_permissions.TENANT_PREFIX}*{SEED_SUFFIX}")
        if (principal := path.name[: -len(SEED_SUFFIX)])
    }
    named = {nats_permissions.tenant_of(p) or "" for p in known} | set(tenants)
    everyone = nats_permissions.principals(t for t in named if t)
    keys = {principal: _kept_or_new(seed_file(out, principal)).public_key for principal in everyone}
    system = _kept_or_new(seed_file(out, SYSTEM_USER)).public_key
    _write_private(out / CONFIG_FILE, render(keys, system))
    return list(everyone)


def _kept_or_new(path: Path) -> Identity:
    if path.exists():
        return read_identity(path)
    seed = new_seed()
    _write_private(path, seed + "\n")
    return identity(seed)


def _write_private(path: Path, text: str) -> None:
    # Readable by its owner alone from the start (never world-readable for a moment), and never half written.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    partial.replace(path)
