"""`python -m services.<name>`: a service whose settings are wrong says so in one line and exits at once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from maestro.runtime import EXIT_CONFIG


def run_service(module: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    # Nothing listens there: a service that went past its settings would wait for NATS, not exit.
    env |= {"MAESTRO_NATS_URL": "nats://127.0.0.1:1", "MAESTRO_HTTP_PORT": "0", **settings}
    return subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("name", ["guard", "budget", "orchestrator", "agents"])
def test_a_bad_setting_stops_a_service_in_one_line_naming_it(name: str) -> None:
    done = run_service(f"services.{name}", MAESTRO_ACK_WAIT_S="soon")
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        f"maestro-{name}: error: MAESTRO_ACK_WAIT_S: expected float, got 'soon'"
    ]


def test_a_price_table_the_budget_cannot_read_stops_it_in_one_line() -> None:
    done = run_service("services.budget", MAESTRO_PRICING="offline=abc")
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        "maestro-budget: error: MAESTRO_PRICING: 'offline=abc': expected input:output USD per million"
    ]
