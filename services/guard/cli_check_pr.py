"""`maestro check-pr`: judge the current branch's changes against its merge base, offline, with the guard.

Exit 1 when the verdict is deny, else 0 (2 for a usage error, as every maestro command).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from maestro.errors import MaestroError
from maestro.settings import Settings

if TYPE_CHECKING:
    from services.guard.bundle import Bundle
    from services.guard.check_pr import Review

FORMATS = ("text", "json", "github", "sarif")


class PolicyFileError(MaestroError):
    """The --policy file could not be read or is not a valid bundle."""


def register(sub: Any) -> None:
    """Add `check-pr` to the CLI's subparsers."""
    check = sub.add_parser("check-pr", help="judge this branch's changes with the guard (exit 1 on deny)")
    check.add_argument(
        "--base",
        help="judge the changes since the merge base with this ref (default: origin/main, main, HEAD~1)",
    )
    check.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    check.add_argument("--output", metavar="FILE", help="write the output here (findings still go to stdout)")
    check.add_argument(
        "--policy", metavar="FILE", help="policy bundle YAML (default: the bundle Maestro ships)"
    )
    check.add_argument("--repo", default=".", help="the git repository (default: the current directory)")
    check.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out changed files matching this glob, e.g. 'tests/fixtures/**' (repeatable)",
    )
    check.set_defaults(run=run)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run check-pr as the CLI asks; offline, so `settings` is unused."""
    return run_sync(args)


def run_sync(args: argparse.Namespace) -> int:
    """Judge, write the output, and return the exit code: 1 when the verdict is deny."""
    # Imported here: the engine loads its regex, shell and license libraries, which no other command needs.
    from services.guard import changes, check_pr

    repo = Path(args.repo)
    base = changes.merge_base(repo, args.base)
    files = check_pr.without(changes.changed_files(repo, base), args.exclude)
    result = check_pr.review(files, _bundle(args.policy), base=args.base or base[:12])
    output = render(result, args.format)
    if args.output:
        Path(args.output).write_text(output)
        sys.stdout.write(check_pr.text(result))
    else:
        sys.stdout.write(output)
    sys.stdout.flush()
    return 1 if result.verdict == "deny" else 0


def _bundle(path: str | None) -> Bundle:
    from services.guard.bundle import BundleError, load_default, parse

    if path is None:
        return load_default()
    try:
        return parse(Path(path).read_bytes())
    except OSError as exc:
        raise PolicyFileError(f"--policy {path}: {exc.strerror}") from None
    except BundleError as exc:
        raise PolicyFileError(f"--policy {path}: {exc}") from None


def render(result: Review, form: str) -> str:
    """The review in one of FORMATS."""
    from services.guard import check_pr, sarif

    match form:
        case "json":
            return check_pr.as_json(result)
        case "github":
            return check_pr.github(result)
        case "sarif":
            try:
                version = metadata.version("maestro")
            except metadata.PackageNotFoundError:
                version = ""
            encoded = msgspec.json.encode(sarif.document(result, tool_version=version))
            return msgspec.json.format(encoded).decode() + "\n"
    return check_pr.text(result)
