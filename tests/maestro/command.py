"""Run the `maestro` console script as a user does: a real process, a clean MAESTRO_ environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MAESTRO = str(Path(sys.executable).parent / "maestro")


def environment(nats_url: str | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without MAESTRO_ settings, plus the server's URL and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    if nats_url:
        env["MAESTRO_NATS_URL"] = nats_url
    return {**env, **extra}


def maestro(
    *args: str,
    stdin: str = "",
    nats_url: str | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    """`maestro ARGS` run to its end, its output captured."""
    return subprocess.run(
        [MAESTRO, *args],
        input=stdin,
        env=environment(nats_url, **extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
