"""`maestro policy show|reset` and argument errors of `policy push`, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from maestro import topics
from maestro.bus import Bus
from maestro.embedded import EmbeddedServer
from maestro.policy import bundle_store
from maestro.policy.bundle import load_default, parse
from tests.maestro.command import maestro

GOOD = "version: show-1\ntenants:\n  acme:\n    credentials: {action: redact}\n"


async def test_policy_show_says_what_the_guards_use_and_reset_goes_back_to_the_shipped_bundle(
    tmp_path: Path, nats_server: EmbeddedServer, bus: Bus
) -> None:
    shipped = load_default()
    fresh = maestro("policy", "show", "--json", nats_url=nats_server.url)
    assert fresh.returncode == 0, fresh.stderr
    shown = json.loads(fresh.stdout)
    assert (shown["version"], shown["hash"], shown["source"]) == (shipped.version, shipped.hash, "shipped")
    assert shown["pushed_by"] is None and shown["pushed_at"] is None

    (tmp_path / "good.yaml").write_text(GOOD)
    pushed = maestro("policy", "push", "good.yaml", "--by", "alice", nats_url=nats_server.url, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    text = maestro("policy", "show", nats_url=nats_server.url)
    assert text.returncode == 0, text.stderr
    assert "show-1" in text.stdout and parse(GOOD).hash in text.stdout
    assert "pushed" in text.stdout and "alice" in text.stdout and "acme" in text.stdout
    shown = json.loads(maestro("policy", "show", "--json", nats_url=nats_server.url).stdout)
    assert (shown["source"], shown["pushed_by"], shown["tenants"]) == ("pushed", "alice", ["acme"])
    assert shown["pushed_at"] and shown["revision"] > 0

    reset = maestro("policy", "reset", "--by", "bob", nats_url=nats_server.url)
    assert reset.returncode == 0, reset.stderr
    assert shipped.version in reset.stdout
    shown = json.loads(maestro("policy", "show", "--json", nats_url=nats_server.url).stdout)
    assert (shown["source"], shown["hash"], shown["pushed_by"]) == ("shipped", shipped.hash, "bob")
    assert (await bundle_store.in_force(bus.js)).source == "shipped"


async def test_argument_errors_name_the_option_and_problems_never_cite_lines_the_file_lacks(
    tmp_path: Path, nats_server: EmbeddedServer, bus: Bus
) -> None:
    (tmp_path / "acme.yaml").write_text("budget: {max_task_micro_usd: 5}\n")
    for tenant in ("acme.*", "ACME", "a b", ""):
        bad = maestro(
            "policy", "push", "acme.yaml", "--tenant", tenant, nats_url=nats_server.url, cwd=tmp_path
        )
        assert bad.returncode == 2, (tenant, bad.stderr)
        assert bad.stderr.splitlines() == [bad.stderr.strip()]
        assert "--tenant" in bad.stderr and "acme.yaml:" not in bad.stderr, bad.stderr
    for command in (("guard", "eval", "--tenant", "acme.*"),):
        bad = maestro(*command, nats_url=nats_server.url)
        assert bad.returncode == 2 and "--tenant" in bad.stderr, bad.stderr

    # A file that is not there has no line 0.
    missing = maestro("policy", "check", "missing.yaml", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == ["missing.yaml: No such file or directory"]

    # A problem only the merged bundle shows (a region check) names the field in the override, no line of
    # the merged YAML (which the user never saw).
    (tmp_path / "region.yaml").write_text(
        "# acme's workers\n"
        + "\n" * 8
        + "residency:\n  workers:\n    planner: {cloud: aws, region: eu-west-9}\n"
    )
    merged = maestro(
        "policy", "push", "region.yaml", "--tenant", "acme", nats_url=nats_server.url, cwd=tmp_path
    )
    assert merged.returncode == 1
    lines = merged.stderr.splitlines()
    assert len(lines) == 1 and "$.residency.workers.planner.region" in lines[0], merged.stderr
    assert "eu-west-9" in lines[0]
    line = lines[0].split(":")[1]
    assert not line.isdigit() or int(line) == 12, merged.stderr


async def test_a_broken_stored_bundle_is_named_as_such_never_as_the_pushed_file(
    tmp_path: Path, nats_server: EmbeddedServer, bus: Bus
) -> None:
    kv = await bus.js.key_value(topics.BUCKET_POLICY)
    await kv.put(topics.POLICY_BUNDLE_KEY, b"version: broken\ndefault:\n  budget: {action: explode}\n")
    (tmp_path / "acme.yaml").write_text("budget: {max_task_micro_usd: 5}\n")
    pushed = maestro(
        "policy", "push", "acme.yaml", "--tenant", "acme", nats_url=nats_server.url, cwd=tmp_path
    )
    assert pushed.returncode == 1
    assert pushed.stderr.splitlines() == [
        "stored bundle:3: $.default.budget.action: Invalid enum value 'explode'"
    ], pushed.stderr
    shown = maestro("policy", "show", nats_url=nats_server.url)
    assert shown.returncode == 1 and shown.stderr.startswith("stored bundle:3: "), shown.stderr
