"""`maestro check-pr` as a user and a pre-commit hook run it: which bundle judges, and staged changes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from maestro.bus import Bus
from maestro.embedded import EmbeddedServer
from maestro.policy import bundle_store
from maestro.policy.bundle import load_default, parse
from tests.maestro.command import maestro

AWS_KEY = "AKIA" + "Z7Q3RTX5KQWE8PLM"
# Credentials only audited: a planted key no longer fails the check when this bundle judges.
LENIENT = b"version: lenient-1\ndefault:\n  credentials: {mode: audit}\n"
ROOT = Path(__file__).parents[4]
UNREACHABLE = "nats://127.0.0.1:1"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        check=True,
    )


def new_repo(tmp_path: Path) -> Path:
    """A repository with a clean first commit on main and a branch `feature` that plants a key."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text('"""App."""\n')
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "app.py").write_text(f'"""App."""\nKEY = "{AWS_KEY}"\n')
    git(repo, "commit", "-q", "-am", "plant")
    return repo


async def test_the_pushed_bundle_judges_when_maestro_is_reachable_and_the_output_says_so(
    tmp_path: Path, nats_server: EmbeddedServer, bus: Bus
) -> None:
    repo = new_repo(tmp_path)
    await bundle_store.push(bus.js, LENIENT, by="alice")
    pushed = parse(LENIENT)

    judged = maestro("check-pr", "--repo", str(repo), nats_url=nats_server.url)
    assert judged.returncode == 0, judged.stdout + judged.stderr  # only audited under the pushed bundle
    last = judged.stdout.splitlines()[-1]
    assert "lenient-1" in last and pushed.hash in last and "pushed" in last and "alice" in last

    sarif = maestro("check-pr", "--repo", str(repo), "--format", "sarif", nats_url=nats_server.url)
    properties = json.loads(sarif.stdout)["runs"][0]["properties"]
    assert (properties["policyVersion"], properties["policyHash"]) == ("lenient-1", pushed.hash)
    assert properties["policySource"].startswith("pushed")
    as_json = json.loads(
        maestro("check-pr", "--repo", str(repo), "--format", "json", nats_url=nats_server.url).stdout
    )
    assert as_json["policy"] == {
        "version": "lenient-1",
        "hash": pushed.hash,
        "source": properties["policySource"],
    }

    # --policy FILE wins over what is pushed, and says so.
    (tmp_path / "strict.yaml").write_text("version: strict-1\n")
    strict = maestro(
        "check-pr", "--repo", str(repo), "--policy", str(tmp_path / "strict.yaml"), nats_url=nats_server.url
    )
    assert strict.returncode == 1
    assert "strict-1" in strict.stdout.splitlines()[-1] and "strict.yaml" in strict.stdout.splitlines()[-1]


def test_without_a_reachable_maestro_the_shipped_bundle_judges_quickly_and_it_says_why(
    tmp_path: Path,
) -> None:
    repo = new_repo(tmp_path)
    started = time.monotonic()
    judged = maestro("check-pr", "--repo", str(repo), nats_url=UNREACHABLE)
    assert time.monotonic() - started < 10
    assert judged.returncode == 1 and "Traceback" not in judged.stderr
    shipped = load_default()
    last = judged.stdout.splitlines()[-1]
    assert shipped.version in last and shipped.hash in last and "shipped" in last and "127.0.0.1:1" in last
    sarif = maestro("check-pr", "--repo", str(repo), "--format", "sarif", nats_url=UNREACHABLE)
    assert json.loads(sarif.stdout)["runs"][0]["properties"]["policySource"].startswith("shipped")


def test_staged_judges_the_index_against_head(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    git(repo, "checkout", "-q", "main")
    (repo / "staged.py").write_text(f'TOKEN = "{AWS_KEY}"\n')
    git(repo, "add", "staged.py")
    (repo / "app.py").write_text(f'"""App."""\nOTHER = "{AWS_KEY}"\n')  # changed but not staged: not judged

    staged = maestro("check-pr", "--staged", "--repo", str(repo), nats_url=UNREACHABLE)
    assert staged.returncode == 1, staged.stdout + staged.stderr
    findings = [line for line in staged.stdout.splitlines() if line.startswith(("staged.py:", "app.py:"))]
    assert findings and all(line.startswith("staged.py:1:") for line in findings)
    assert AWS_KEY not in staged.stdout

    # What is staged is judged as staged, not as in the working tree: unstage the key by staging a fix.
    (repo / "staged.py").write_text("TOKEN = None\n")
    git(repo, "add", "staged.py")
    assert maestro("check-pr", "--staged", "--repo", str(repo), nats_url=UNREACHABLE).returncode == 0
    # Committed changes are not staged ones; --staged and --base are two questions, not one.
    both = maestro("check-pr", "--staged", "--base", "main", "--repo", str(repo), nats_url=UNREACHABLE)
    assert both.returncode == 2 and "--base" in both.stderr


def test_staged_in_a_repository_without_a_commit_judges_everything_staged(tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "first.py").write_text(f'KEY = "{AWS_KEY}"\n')
    git(repo, "add", ".")
    run = maestro("check-pr", "--staged", "--repo", str(repo), nats_url=UNREACHABLE)
    assert run.returncode == 1 and "first.py:1:" in run.stdout, run.stdout + run.stderr


def test_the_pre_commit_hook_runs_check_pr_on_the_staged_changes() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = [h for h in hooks if h["id"] == "maestro-check-pr"]
    assert hook["entry"].split()[:3] == ["maestro", "check-pr", "--staged"]
    assert hook["pass_filenames"] is False and hook["language"] == "python"
    assert "pre-commit" in hook.get("stages", ["pre-commit"])
