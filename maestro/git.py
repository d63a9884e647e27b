"""A local git repository as the CLI reads it: its commits, the merge base a branch is judged against, and
the text of its files at a commit (for `maestro check-pr` and `maestro review-pr`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from maestro.errors import MaestroError

DEFAULT_BASES = ("origin/main", "main", "HEAD~1")
# git's empty tree: the base of a repository's first commit.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class GitError(MaestroError):
    """git could not answer: not a repository, an unknown ref, git missing."""


def git(repo: Path, *args: str) -> bytes:
    """What `git ARGS` prints in `repo`; raises GitError with git's own words when it fails."""
    try:
        done = subprocess.run(
            ["git", "-c", "core.quotePath=false", *args], cwd=repo, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def is_commit(repo: Path, ref: str) -> bool:
    """Whether `ref` names a commit of `repo`."""
    try:
        git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        return False
    return True


def merge_base(repo: Path, ref: str | None) -> str:
    """What HEAD's changes are judged against: the merge base of HEAD and `ref` (or the first default
    that exists); git's empty tree when none does. Raises GitError for an unknown `ref`."""
    git(repo, "rev-parse", "--verify", "HEAD")
    if ref is not None and not is_commit(repo, ref):
        raise GitError(f"--base {ref}: no such commit")
    for candidate in (ref,) if ref is not None else DEFAULT_BASES:
        if candidate is not None and is_commit(repo, candidate):
            return git(repo, "merge-base", "HEAD", candidate).decode().strip()
    return EMPTY_TREE
