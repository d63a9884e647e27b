"""`maestro up` as a real process: settings are checked before anything starts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli import MAESTRO, env_for


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        (
            "MAESTRO_PRICING",
            "offline=abc",
            "MAESTRO_PRICING: 'offline=abc': expected input:output USD per million",
        ),
        ("MAESTRO_ACK_WAIT_S", "-5", "MAESTRO_ACK_WAIT_S: must be more than 0, got -5.0"),
    ],
)
def test_up_with_a_bad_setting_starts_nothing_and_names_it(
    tmp_path: Path, name: str, value: str, line: str
) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [MAESTRO, "up", "--nats-port", "0", "--free-ports"],
        env={**env_for(data_dir), "MAESTRO_STATE_DIR": str(tmp_path / "state"), name: value},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr.splitlines()) == (2, [f"maestro: error: {line}"])
    assert "Maestro is up." not in done.stdout
    assert not (data_dir / "jetstream").exists()
