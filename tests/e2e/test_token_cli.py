"""`maestro up` makes the local admin token, `maestro token` makes, lists and revokes others: real processes
against a real mesh, and the API they open or no longer open."""

from __future__ import annotations

import json
import re
import stat
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.test_cli import maestro, stop_up, up_with_banner

_API = re.compile(r"^\s*API\s+(\S+)/v1/tasks")


def call(api: str, path: str, token: str) -> tuple[int, object]:
    request = urllib.request.Request(api + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_up_makes_an_admin_token_and_token_commands_make_list_and_revoke_others(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc, banner = up_with_banner(data_dir)
    try:
        api = next(m.group(1) for line in banner if (m := _API.match(line)))
        token_file = data_dir / "api.token"
        assert any(str(token_file) in line for line in banner if line.strip().startswith("token"))
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        admin = token_file.read_text().strip()
        assert call(api, "/v1/tasks", admin)[0] == 200
        assert call(api, "/v1/tasks", "")[0] == 401

        done = maestro(data_dir, "submit", "--tenant", "globex", "--role", "planner", "--wait", "Plan it")
        assert done.returncode == 0, done.stderr
        created = maestro(
            data_dir, "token", "create", "--tenant", "acme", "--scope", "read", "--expires", "9h"
        )
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip()
        assert re.fullmatch(r"mst_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token) and "shown once" in created.stderr
        token_id = token.split("_")[1]

        # acme's reader sees none of globex's tasks; the admin sees them.
        status, page = call(api, "/v1/tasks", token)
        assert status == 200 and page["items"] == []  # type: ignore[index]
        status, page = call(api, "/v1/tasks", admin)
        assert status == 200 and [t["tenant"] for t in page["items"]] == ["globex"]  # type: ignore[index]

        listed = maestro(data_dir, "token", "list", "--tenant", "acme", "--json")
        assert listed.returncode == 0, listed.stderr
        [grant] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (grant["id"], grant["tenant"], grant["scopes"]) == (token_id, "acme", ["read"])
        assert "digest" not in grant and token.split("_", 2)[2] not in listed.stdout

        revoked = maestro(data_dir, "token", "revoke", token_id)
        assert revoked.returncode == 0 and token_id in revoked.stdout
        assert call(api, "/v1/tasks", token)[0] == 401
        again = maestro(data_dir, "token", "revoke", token_id)
        assert (again.returncode, again.stderr.strip()) == (1, f"maestro: error: no token {token_id}")
        bad = maestro(data_dir, "token", "create", "--tenant", "Not A Tenant", "--scope", "read")
        assert bad.returncode == 2 and bad.stderr.startswith("maestro: error:")
    finally:
        stop_up(proc)

    # The next start keeps the token that still works.
    proc, _ = up_with_banner(data_dir)
    try:
        assert token_file.read_text().strip() == admin
    finally:
        stop_up(proc)
