"""`maestro up --nats-auth`, as real processes: the embedded server asks for credentials, each service runs
with its own, the CLI finds admin's in the data dir, and credentials already there are kept."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from pathlib import Path

import nats
import nats.errors
import pytest

from maestro import instances
from maestro.access import nats_config
from tests.e2e.test_cli import children_of, maestro, stop_up, up_with_banner

_NATS = re.compile(r"^\s*NATS\s+(\S+)")
_API = re.compile(r"^\s*API\s+(\S+)/v1/tasks")


def _environ(pid: int) -> dict[str, str]:
    raw = (Path("/proc") / str(pid) / "environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_up_with_nats_auth_runs_each_service_with_its_own_credentials(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    auth_dir = data_dir / instances.AUTH_DIR
    # Credentials written before (a tenant added by `maestro nats-config`) are kept, not replaced.
    nats_config.write(auth_dir, ["acme"])
    before = {p.name: p.read_text() for p in auth_dir.glob("*.nk")}
    proc, banner = up_with_banner(data_dir, "--nats-auth")
    try:
        assert any(
            str(auth_dir / "admin.nk") in line for line in banner if line.strip().startswith("access")
        ), banner
        url = next(m.group(1) for line in banner if (m := _NATS.match(line)))
        assert {p.name: p.read_text() for p in auth_dir.glob("*.nk")} == before

        # The CLI finds the server and admin's credentials in the data dir, as it finds nats.url.
        done = maestro(data_dir, "submit", "--tenant", "acme", "--role", "planner", "--wait", "Plan it")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[1] == "succeeded"

        # Every service process has its own service's credentials.
        given = {}
        for pid in children_of(proc.pid):
            env = _environ(pid)
            if "MAESTRO_WORKER" in env:
                given[env["MAESTRO_WORKER"]] = env.get("MAESTRO_NATS_CREDS")
        assert given == {
            "guard": str(auth_dir / "guard.nk"),
            "budget-1": str(auth_dir / "budget.nk"),
            "budget-2": str(auth_dir / "budget.nk"),
            "orchestrator": str(auth_dir / "orchestrator.nk"),
            "agents": str(auth_dir / "agents.nk"),
        }
        # The API's admin routes (an operator's token) work under the orchestrator's permissions.
        api = next(m.group(1) for line in banner if (m := _API.match(line)))
        token = (data_dir / "api.token").read_text().strip()
        change = urllib.request.Request(
            f"{api}/v1/budgets/globex",
            data=json.dumps({"limit_micro_usd": 5_000_000}).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(change, timeout=10) as resp:
            assert json.loads(resp.read())["limit_micro_usd"] == 5_000_000
        assert "Violation" not in (data_dir / "nats-server.log").read_text()

        # Nobody gets in without credentials.
        async def anonymous() -> None:
            await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)

        with pytest.raises(nats.errors.Error, match=r"[Aa]uthorization"):
            asyncio.run(anonymous())
    finally:
        stop_up(proc)
