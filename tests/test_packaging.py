"""Installing Maestro prints no deprecation warning caused by our own packaging configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parent.parent
# The SPDX string form of project.license (PEP 639) needs this setuptools; the dev extras install it.
_SETUPTOOLS_WITH_SPDX = (77, 0)


def _version(text: str) -> tuple[int, int]:
    """(major, minor) of a version such as `84.2.1` or `77`."""
    major, minor = [*(int(part) for part in text.split(".")[:2] if part.isdigit()), 0, 0][:2]
    return major, minor


def _clone(into: Path) -> Path:
    """The files git tracks, copied as a fresh clone would have them (others' edits in progress aside)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def test_preparing_the_editable_install_warns_of_nothing_deprecated(tmp_path: Path) -> None:
    # Offline: the build uses this venv's setuptools (no build isolation) and no index is asked.
    assert _version(setuptools.__version__) >= _SETUPTOOLS_WITH_SPDX, (
        f"setuptools {setuptools.__version__} is older than pyproject.toml needs: pip install -e '.[dev]'"
    )
    clone = _clone(tmp_path / "clone")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONWARNINGS": ""}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--dry-run",
            "--verbose",
            "--editable",
            str(clone),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Would install maestro" in output, output
    warned = [
        line.strip()
        for line in output.splitlines()
        if "deprecat" in line.lower() or "BuildBackendWarning" in line or "SetuptoolsWarning" in line
    ]
    assert not warned, "\n".join(warned)


@pytest.mark.parametrize("table", ["project", "build-system"])
def test_pyproject_names_the_setuptools_its_fields_need(table: str) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    if table == "project":
        # A table ({text = ...}) is deprecated; an SPDX expression is what setuptools and PyPI read.
        assert isinstance(config["project"]["license"], str)
    else:
        assert any(
            r.startswith("setuptools>=") and _version(r.split(">=")[1]) >= _SETUPTOOLS_WITH_SPDX
            for r in config["build-system"]["requires"]
        ), config["build-system"]["requires"]
