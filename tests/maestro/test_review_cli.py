"""`maestro review-pr`'s view of a checkout: which repository it is, and the workflow of its HEAD."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from maestro import review_cli


def git(checkout: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args]
    return subprocess.run(command, cwd=checkout, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "widgets-local"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "w.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    return repo


@pytest.mark.parametrize(
    "url",
    [
        "git@github.com:acme/widgets.git",
        "https://github.com/acme/widgets",
        "https://github.com/acme/widgets.git/",
        "ssh://git@gitea.example:2222/acme/widgets.git",
    ],
)
def test_the_repository_is_the_origin_remotes_owner_and_name(checkout: Path, url: str) -> None:
    git(checkout, "remote", "add", "origin", url)
    assert review_cli.repo_name(checkout) == "acme/widgets"


def test_without_a_remote_it_is_the_checkouts_directory(checkout: Path) -> None:
    (checkout / "sub").mkdir()
    assert review_cli.repo_name(checkout / "sub") == "widgets-local"


def test_the_workflow_reviews_the_diff_since_the_base_and_tests_the_files_at_head(checkout: Path) -> None:
    base = git(checkout, "rev-parse", "HEAD")
    git(checkout, "checkout", "-q", "-b", "feature")
    (checkout / "w.py").write_text("x = 2\n")
    (checkout / "new.txt").write_text("hello\n")
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", "two")
    head = git(checkout, "rev-parse", "HEAD")
    workflow = review_cli.local_review(checkout, "main", "acme", ["make test"], 786_432)
    reviewer, tester = workflow.steps
    assert "+x = 2" in reviewer.context[0].content and "+hello" in reviewer.context[0].content
    assert {f.path: f.content for f in tester.context} == {"w.py": "x = 2\n", "new.txt": "hello\n"}
    assert workflow.labels == {"repo": "widgets-local", "commit": head, "origin": "local"}
    assert base[:12] in reviewer.prompt and tester.commands == ["make test"]
    with pytest.raises(review_cli.ReviewError, match="request may carry 100"):
        review_cli.local_review(checkout, "main", "acme", ["make test"], 100)
