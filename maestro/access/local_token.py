"""The local admin token `maestro up` makes on its first start, so `make run` needs no set-up.

It lives in the data directory (`<data_dir>/api.token`, mode 0600, beside `nats.url`), for the local user to
present to the API: `curl -H "Authorization: Bearer $(cat .maestro/api.token)" ...`. A later start reuses it
while it still opens its grant; once revoked (or the store is new) the next start makes another.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from maestro import arguments
from maestro.access.grants import BadToken, mint
from maestro.access.token_store import TokenStore
from maestro.bus import Bus
from proto.v1.access import ALL_TENANTS

TOKEN_FILE = "api.token"


def local_subject() -> str:
    """Who the local user is, as a token's subject: `user@host`."""
    return f"{arguments.user()}@{socket.gethostname() or 'localhost'}"


async def ensure_local_admin(bus: Bus, data_dir: Path, subject: str) -> Path:
    """The file holding a working admin token for every tenant, made (token and file) when there is none."""
    path = data_dir / TOKEN_FILE
    tokens = TokenStore(bus)
    try:
        await tokens.opened_by(path.read_text().strip())
        return path
    except (OSError, BadToken):
        pass
    minted = mint(
        tenant=ALL_TENANTS,
        scopes=["admin"],
        subject=subject,
        now=datetime.now(UTC),
        created_by="maestro up",
    )
    await tokens.add(minted)
    _write_private(path, minted.token + "\n")
    return path


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, never half-written, never world-readable first."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    partial.replace(path)
