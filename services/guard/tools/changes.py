"""A branch's changes as git has them: the merge base, each changed file's added lines and its text."""

from __future__ import annotations

import subprocess
from pathlib import Path

from maestro.errors import MaestroError
from maestro.policy.check_pr import ChangedFile, added_lines

DEFAULT_BASES = ("origin/main", "main", "HEAD~1")
# git's empty tree: the base of a repository's first commit.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class GitError(MaestroError):
    """git could not answer: not a repository, an unknown ref, git missing."""


def _git(repo: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-c", "core.quotePath=false", *args], cwd=repo, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _is_commit(repo: Path, ref: str) -> bool:
    try:
        _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        return False
    return True


def merge_base(repo: Path, ref: str | None) -> str:
    """What HEAD's changes are judged against: the merge base of HEAD and `ref` (or the first default
    that exists); git's empty tree when none does. Raises GitError for an unknown `ref`."""
    _git(repo, "rev-parse", "--verify", "HEAD")
    if ref is not None and not _is_commit(repo, ref):
        raise GitError(f"--base {ref}: no such commit")
    for candidate in (ref,) if ref is not None else DEFAULT_BASES:
        if candidate is not None and _is_commit(repo, candidate):
            return _git(repo, "merge-base", "HEAD", candidate).decode().strip()
    return EMPTY_TREE


def index_base(repo: Path) -> str:
    """What the staged changes are judged against: HEAD, or git's empty tree before the first commit."""
    return "HEAD" if _is_commit(repo, "HEAD") else EMPTY_TREE


def changed_files(repo: Path, base: str, *, staged: bool = False) -> list[ChangedFile]:
    """Files added or modified since `base` (a renamed file under its new path), with added lines, as
    HEAD has them (with `staged`: as git's index has them, for a pre-commit hook); binary files left out."""
    compared = ("--cached", base) if staged else (base, "HEAD")
    diff = _git(
        repo, "diff", "--unified=0", "--no-color", "--no-ext-diff", "-M", "--diff-filter=AMR", *compared
    )
    files = []
    for path, added in sorted(added_lines(diff.decode("utf-8", errors="replace")).items()):
        if not added:
            continue
        data = _git(repo, "show", f":{path}" if staged else f"HEAD:{path}")
        if b"\0" in data:
            continue
        files.append(ChangedFile(path, data.decode("utf-8", errors="replace"), frozenset(added)))
    return files
