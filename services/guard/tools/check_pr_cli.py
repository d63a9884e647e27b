"""`maestro check-pr`: judge the current branch's changes (or the staged ones) with the guard, offline.

The bundle that judges is, in order: the `--policy` file; the bundle pushed to a running Maestro, when
one answers within a second; the bundle Maestro ships. Every output says which one judged.
Exit 1 when the verdict is deny, else 0 (2 for a usage error, as every maestro command).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors
from nats.js.errors import APIError

from maestro.errors import MaestroError
from maestro.runtime import connect
from maestro.settings import Settings

if TYPE_CHECKING:
    from maestro.policy.bundle import Bundle
    from maestro.policy.check_pr import Review

FORMATS = ("text", "json", "github", "sarif")
# A hook runs on every commit: a Maestro that is not running must cost no more than this.
_REACH_S = 1.0


class PolicyFileError(MaestroError):
    """The --policy file could not be read or is not a valid bundle."""


@dataclass(frozen=True)
class Judging:
    """The bundle that judges and where it comes from, as the output states it."""

    bundle: Bundle
    source: str
    """`shipped ...`, `pushed ...` or `file PATH`, with what makes it so."""


def register(sub: Any) -> None:
    """Add `check-pr` to the CLI's subparsers."""
    check = sub.add_parser("check-pr", help="judge this branch's changes with the guard (exit 1 on deny)")
    which = check.add_mutually_exclusive_group()
    which.add_argument(
        "--base",
        help="judge the changes since the merge base with this ref (default: origin/main, main, HEAD~1)",
    )
    which.add_argument(
        "--staged", action="store_true", help="judge the changes staged for commit against HEAD (pre-commit)"
    )
    check.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    check.add_argument("--output", metavar="FILE", help="write the output here (findings still go to stdout)")
    check.add_argument(
        "--policy",
        metavar="FILE",
        help="policy bundle YAML (default: the bundle pushed to a running Maestro, else the shipped one)",
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
    """Run check-pr as the CLI asks: find the bundle that judges, then judge."""
    judging = _file(args.policy) if args.policy else await _in_force(settings)
    return run_sync(args, judging=judging, staged=args.staged)


def run_sync(args: argparse.Namespace, *, judging: Judging | None = None, staged: bool = False) -> int:
    """Judge, write the output, and return the exit code: 1 when the verdict is deny.

    Without `judging`, the `--policy` file or else the shipped bundle judges (nothing is asked of NATS).
    """
    # Imported here: the engine loads its regex, shell and license libraries, which no other command needs.
    from maestro.policy import check_pr
    from services.guard.tools import changes

    if judging is None:
        judging = _file(args.policy) if args.policy else _shipped("")
    repo = Path(args.repo)
    base = changes.index_base(repo) if staged else changes.merge_base(repo, args.base)
    files = check_pr.without(changes.changed_files(repo, base, staged=staged), args.exclude)
    shown_base = "the index against HEAD" if staged else args.base or base[:12]
    result = check_pr.review(files, judging.bundle, base=shown_base)
    output = render(result, args.format, judging)
    if args.output:
        Path(args.output).write_text(output)
        sys.stdout.write(_said(check_pr.text(result), judging))
    else:
        sys.stdout.write(output)
    sys.stdout.flush()
    return 1 if result.verdict == "deny" else 0


def _shipped(why: str) -> Judging:
    from maestro.policy.bundle import load_default

    return Judging(load_default(), f"shipped with Maestro{f' ({why})' if why else ''}")


def _file(path: str) -> Judging:
    from maestro.policy.bundle import BundleError, parse

    try:
        return Judging(parse(Path(path).read_bytes()), f"file {path}")
    except OSError as exc:
        raise PolicyFileError(f"--policy {path}: {exc.strerror}") from None
    except BundleError as exc:
        raise PolicyFileError(f"--policy {path}: {exc}") from None


async def _in_force(settings: Settings) -> Judging:
    """The bundle a running Maestro's guards use, or the shipped one (saying why) when none answers."""
    from maestro.policy import bundle_store

    try:
        nc = await connect(settings, "maestro-check-pr", patience_s=_REACH_S)
    except ConnectionError as exc:  # none found, or none answered in time: the error says where it looked
        return _shipped(str(exc))
    url = nc.connected_url.netloc if nc.connected_url else "NATS"
    try:
        stored = await bundle_store.in_force(nc.jetstream(timeout=_REACH_S))
    except bundle_store.StoredBundleError as exc:
        return _shipped(f"the bundle stored at {url} does not validate: {exc}")
    except (APIError, nats.errors.Error, TimeoutError) as exc:
        return _shipped(f"the Maestro at {url} did not say which bundle is in force: {exc!r}")
    finally:
        await nc.close()
    if stored.source == "shipped":
        done = f", reset by {stored.by or 'someone'} at {stored.at:%Y-%m-%d %H:%M UTC}" if stored.at else ""
        return _shipped(f"in force at {url}{done}")
    when = f" at {stored.at:%Y-%m-%d %H:%M UTC}" if stored.at else ""
    return Judging(stored.bundle, f"pushed to {url} by {stored.by or 'someone unknown'}{when}")


def _said(rendered: str, judging: Judging) -> str:
    """The text or GitHub output with its closing verdict line naming the bundle that judged."""
    bundle = judging.bundle
    body, _, last = rendered.rstrip("\n").rpartition("\n")
    last += f"; judged by bundle {bundle.version} (sha256 {bundle.hash}), {judging.source}"
    return f"{body}\n{last}\n" if body else f"{last}\n"


def render(result: Review, form: str, judging: Judging) -> str:
    """The review in one of FORMATS, saying which bundle judged."""
    from maestro.policy import check_pr, sarif

    policy = {"version": judging.bundle.version, "hash": judging.bundle.hash, "source": judging.source}
    match form:
        case "json":
            document = msgspec.json.decode(check_pr.as_json(result))
            return msgspec.json.encode({**document, "policy": policy}).decode() + "\n"
        case "github":
            return _said(check_pr.github(result), judging)
        case "sarif":
            try:
                version = metadata.version("maestro")
            except metadata.PackageNotFoundError:
                version = ""
            log = sarif.document(result, tool_version=version)
            log["runs"][0]["properties"]["policySource"] = judging.source
            return msgspec.json.format(msgspec.json.encode(log)).decode() + "\n"
    return _said(check_pr.text(result), judging)
