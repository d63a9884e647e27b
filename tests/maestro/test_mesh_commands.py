"""`maestro up` as a real process: settings are checked before anything starts, and a Ctrl-C before the
mesh is up stops it at once."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
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


def test_ctrl_c_while_up_waits_for_an_external_nats_stops_it_at_once(tmp_path: Path) -> None:
    log = tmp_path / "up.log"
    with socket.socket() as nothing_listens:
        nothing_listens.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        url = f"nats://127.0.0.1:{nothing_listens.getsockname()[1]}"
        with open(log, "w") as err:
            proc = subprocess.Popen(
                [MAESTRO, "up", "--free-ports"],
                env={**env_for(tmp_path / "data"), "MAESTRO_NATS_URL": url},
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        try:
            deadline = time.monotonic() + 20
            while "NATS error" not in log.read_text():  # it is trying to connect
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
            assert time.monotonic() - started < 5
            assert (proc.returncode, out.splitlines()) == (130, ["stopped before it was up."])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
