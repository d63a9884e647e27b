"""`python -m services.<name>`: a service whose settings are wrong says so in one line and exits at once;
a server that does not answer is reported with where its URL came from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from maestro.children import EXIT_CONFIG
from maestro.runtime import Unreachable, connect
from maestro.settings import Settings


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


@pytest.mark.parametrize("name", ["guard", "budget"])
@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("MAESTRO_PRICING", "offline=abc", "'offline=abc': expected input:output USD per million"),
        ("MAESTRO_MODELS", "gpt 4o", "['gpt 4o']: expected model ids such as gpt-4o"),
    ],
)
def test_a_price_table_or_model_list_that_cannot_be_read_stops_a_service_in_one_line(
    name: str, variable: str, value: str, said: str
) -> None:
    # The guard prices its estimates with the same table the budget charges with.
    done = run_service(f"services.{name}", **{variable: value})
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [f"maestro-{name}: error: {variable}: {said}"]


async def test_a_url_that_does_not_answer_is_reported_with_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "nats.url").write_text("nats://127.0.0.1:1\n")  # left by a `maestro up` killed outright
    with pytest.raises(Unreachable) as caught:
        await connect(Settings(data_dir=str(tmp_path)), "test", patience_s=0.5)
    assert str(caught.value) == (
        f"cannot reach NATS at nats://127.0.0.1:1 (from {tmp_path / 'nats.url'}): is Maestro running?"
    )
