"""The image's contents without a Docker engine: the build context the Dockerfile sees (the tracked files
.dockerignore lets through) builds, offline, the wheel its first stage builds, and that wheel holds what the
manifests run: every service's module, the console script, the shipped bundle and the schemas."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

from tests.test_packaging import _clone


def _ignored(path: PurePosixPath, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the context: a pattern matching it or a directory above it
    (`**/` matching at any depth), as Docker reads the file."""
    for depth in range(1, len(path.parts) + 1):
        prefix = str(PurePosixPath(*path.parts[:depth]))
        for pattern in patterns:
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:])
            ):
                return True
    return False


def _context(clone: Path) -> Path:
    """The clone without what .dockerignore keeps out (the files Docker sends to the build)."""
    lines = (clone / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # no exceptions: this reading of the file is enough
    for path in sorted(clone.rglob("*"), reverse=True):
        if path.is_file() and _ignored(PurePosixPath(path.relative_to(clone).as_posix()), patterns):
            path.unlink()
    return clone


def test_the_docker_build_context_builds_the_wheel_the_manifests_run(tmp_path: Path) -> None:
    context = _context(_clone(tmp_path / "context"))
    left = {p.relative_to(context).parts[0] for p in context.rglob("*") if p.is_file()}
    assert {"maestro", "services", "proto", "pyproject.toml", "README.md"} <= left
    assert not left & {"tests", "deploy", "bench", "Dockerfile"}
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    out = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out)]
    built = subprocess.run(
        [*command, str(context)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = out.glob("maestro-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for service in ("guard", "budget", "orchestrator", "agents"):
        assert f"services/{service}/__main__.py" in names  # python -m services.<name>, as the pods run
    assert "maestro/policy/bundles/default.yaml" in names
    assert any(n.startswith("proto/schema/") for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "maestro = maestro.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
