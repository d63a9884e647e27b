"""`maestro policy check|push` and `maestro guard eval` as a user runs them: real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from maestro import topics
from maestro.bus import Bus
from maestro.embedded import EmbeddedServer
from maestro.policy.bundle import load_default, parse
from tests.maestro.command import MAESTRO, environment, maestro

AWS = "AKIA" + "Z7Q3RTX5KQWE8PLM"

GOOD = """\
version: cli-1
default:
  budget: {max_task_micro_usd: 100000}
tenants:
  acme:
    credentials: {action: redact}
"""
BAD = """\
version: cli-2
default:
  residency:
    workers:
      planner: {cloud: aws, region: eu-west-9}
  budget:
    action: explode
"""


def test_policy_check_accepts_a_good_bundle_and_names_line_and_field_of_a_bad_one(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    good = maestro("policy", "check", "good.yaml", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert f"version cli-1, sha256 {parse(GOOD).hash}" in good.stdout
    assert "tenant overrides: acme" in good.stdout

    bad = maestro("policy", "check", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == ["bad.yaml:7: $.default.budget.action: Invalid enum value 'explode'"]
    # Once the types are right, what types cannot catch is reported with its line too.
    (tmp_path / "bad.yaml").write_text(BAD.replace("explode", "deny"))
    bad = maestro("policy", "check", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "bad.yaml:5: $.default.residency.workers.planner.region: unknown aws region 'eu-west-9'"
    ]


def test_guard_eval_judges_each_line_offline_and_reports_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    lines = [
        json.dumps({"id": "clean", "tenant": "acme", "role": "planner", "prompt": "Plan a CLI"}),
        json.dumps({"id": "leak", "tenant": "globex", "role": "planner", "prompt": f"use {AWS}"}),
        json.dumps({"id": "masked", "tenant": "acme", "role": "planner", "prompt": f"use {AWS}"}),
        "",
        "{not json",
        json.dumps({"id": "norole", "tenant": "acme", "prompt": "x"}),
        json.dumps({"id": "dear", "tenant": "acme", "role": "planner", "prompt": "x" * 400_000}),
    ]
    run = maestro("guard", "eval", "--policy", "good.yaml", stdin="\n".join(lines) + "\n", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(out) == 6
    clean, leak, masked, broken, norole, dear = out
    assert (clean["id"], clean["verdict"], clean["policy_version"]) == ("clean", "allow", "cli-1")
    assert clean["policy_hash"] == parse(GOOD).hash and clean["estimate_micro_usd"] > 0
    assert (leak["id"], leak["verdict"]) == ("leak", "deny")
    assert leak["violations"][0]["rule_id"] == "credentials.aws-access-key"
    assert (masked["id"], masked["verdict"]) == ("masked", "redact")
    assert AWS not in run.stdout
    assert broken["line"] == 5 and "invalid request" in broken["error"]
    assert norole["line"] == 6 and "role" in norole["error"]
    assert (dear["verdict"], dear["violations"][0]["rule_id"]) == ("deny", "budget.task-ceiling")

    # Without --policy the shipped bundle judges; --tenant judges every line as that tenant's.
    shipped = maestro("guard", "eval", "--tenant", "acme", stdin=lines[1] + "\n")
    (decision,) = [json.loads(line) for line in shipped.stdout.splitlines()]
    assert (decision["id"], decision["verdict"]) == ("leak", "deny")
    assert decision["policy_version"] == load_default().version


async def test_policy_push_stores_a_valid_bundle_and_refuses_a_broken_one(
    tmp_path: Path, nats_server: EmbeddedServer, bus: Bus
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "acme.yaml").write_text("budget: {max_task_micro_usd: 5}\n")
    kv = await bus.js.key_value(topics.BUCKET_POLICY)

    pushed = maestro("policy", "push", "good.yaml", nats_url=nats_server.url, cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    assert f"pushed: version cli-1, sha256 {parse(GOOD).hash}" in pushed.stdout
    assert (await kv.get(topics.POLICY_BUNDLE_KEY)).value == GOOD.encode()

    refused = maestro("policy", "push", "bad.yaml", nats_url=nats_server.url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "bad.yaml:7: $.default.budget.action" in refused.stderr
    assert (await kv.get(topics.POLICY_BUNDLE_KEY)).value == GOOD.encode()

    tenant = maestro(
        "policy", "push", "acme.yaml", "--tenant", "acme", nats_url=nats_server.url, cwd=tmp_path
    )
    assert tenant.returncode == 0, tenant.stderr
    stored = parse((await kv.get(topics.POLICY_BUNDLE_KEY)).value or b"")
    assert stored.version.startswith("cli-1+acme.") and stored.version in tenant.stdout
    assert stored.policy("acme").budget.max_task_micro_usd == 5
    assert stored.policy("acme").credentials.action == "deny"  # the new override replaced the old one


def test_guard_eval_reports_a_line_that_is_not_utf8_and_judges_every_line_after_it(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    first = json.dumps({"id": "before", "tenant": "acme", "role": "planner", "prompt": "Plan"}).encode()
    broken = b'{"id": "latin1", "tenant": "acme", "role": "planner", "prompt": "caf\xe9"}'
    garbage = b"\xff\xfe not even json"
    untyped = json.dumps({"id": "norole", "tenant": "acme", "prompt": "x"}).encode()
    last = json.dumps({"id": "after", "tenant": "acme", "role": "planner", "prompt": "Plan"}).encode()
    run = subprocess.run(
        [MAESTRO, "guard", "eval", "--policy", "good.yaml"],
        input=b"\n".join([first, broken, garbage, untyped, last]) + b"\n",
        env=environment(),
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = [json.loads(line) for line in run.stdout.splitlines()]
    assert [o.get("id") for o in out] == ["before", "latin1", None, "norole", "after"]
    assert [o.get("line") for o in out] == [None, 2, 3, 4, None]
    assert "UTF-8" in out[1]["error"] and "UTF-8" in out[2]["error"]
    assert "role" in out[3]["error"]
    assert out[0]["verdict"] == out[4]["verdict"] == "allow"


def test_policy_check_refuses_a_key_written_twice_naming_both_lines(tmp_path: Path) -> None:
    (tmp_path / "twice.yaml").write_text(
        "version: dup-1\n"
        "default:\n"
        "  credentials:\n"
        "    action: deny\n"
        "    action: audit\n"
        "tenants:\n"
        "  acme: {}\n"
        "  acme: {budget: {max_task_micro_usd: 1}}\n"
    )
    run = maestro("policy", "check", "twice.yaml", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "twice.yaml:5: $.default.credentials.action: duplicate key (first at line 4); "
        "YAML would keep only the last",
        "twice.yaml:8: $.tenants.acme: duplicate key (first at line 7); YAML would keep only the last",
    ]


def test_policy_check_refuses_unknown_geographies_and_regions_that_name_no_one_place(tmp_path: Path) -> None:
    (tmp_path / "where.yaml").write_text(
        "version: where-1\n"
        "default:\n"
        "  residency:\n"
        "    allowed: [europe]\n"
        "    workers:\n"
        "      planner: {region: eu-west-1}\n"
        "      coder: {region: westeurope}\n"
        "    models:\n"
        "      m: {endpoint: {provider: azure-openai, geography: EUR}}\n"
    )
    run = maestro("policy", "check", "where.yaml", cwd=tmp_path)
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith("where.yaml:4: $.default.residency.allowed[0]: 'europe' is neither")
    assert lines[1].startswith("where.yaml:6: $.default.residency.workers.planner.region: region 'eu-west-1'")
    assert "name its cloud" in lines[1]
    assert lines[2].startswith("where.yaml:9: $.default.residency.models.m.endpoint.geography: 'EUR'")
