"""A branch's changes as git has them: the merge base, each changed file's added lines and its text."""

from __future__ import annotations

from pathlib import Path

from maestro.git import DEFAULT_BASES, EMPTY_TREE, GitError, git, is_commit, merge_base
from maestro.policy.check_pr import ChangedFile, added_lines

# merge_base, GitError and the rest live in maestro/git.py, shared with `maestro review-pr`.
__all__ = ["DEFAULT_BASES", "EMPTY_TREE", "GitError", "changed_files", "index_base", "merge_base"]


def index_base(repo: Path) -> str:
    """What the staged changes are judged against: HEAD, or git's empty tree before the first commit."""
    return "HEAD" if is_commit(repo, "HEAD") else EMPTY_TREE


def changed_files(repo: Path, base: str, *, staged: bool = False) -> list[ChangedFile]:
    """Files added or modified since `base` (a renamed file under its new path), with added lines, as
    HEAD has them (with `staged`: as git's index has them, for a pre-commit hook); binary files left out."""
    compared = ("--cached", base) if staged else (base, "HEAD")
    diff = git(
        repo, "diff", "--unified=0", "--no-color", "--no-ext-diff", "-M", "--diff-filter=AMR", *compared
    )
    files = []
    for path, added in sorted(added_lines(diff.decode("utf-8", errors="replace")).items()):
        if not added:
            continue
        data = git(repo, "show", f":{path}" if staged else f"HEAD:{path}")
        if b"\0" in data:
            continue
        files.append(ChangedFile(path, data.decode("utf-8", errors="replace"), frozenset(added)))
    return files
