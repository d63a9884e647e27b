"""A GitHub connection the orchestrator cannot use stops it at start-up, in one line naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from maestro.children import EXIT_CONFIG
from maestro.embedded import EmbeddedServer


def test_a_bad_github_config_stops_the_orchestrator_in_one_line(
    nats_server: EmbeddedServer, tmp_path: Path
) -> None:
    config = tmp_path / "github.yaml"
    config.write_text("repositories:\n  acme/widgets:\n    tenant: acme\n    test_commands: [make test]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env |= {
        "MAESTRO_NATS_URL": nats_server.url,
        "MAESTRO_HTTP_PORT": "0",
        "MAESTRO_GITHUB_CONFIG": str(config),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.orchestrator"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"maestro-orchestrator: error: MAESTRO_GITHUB_CONFIG {config}: line 3: "
        "$.repositories.acme/widgets.tenant: tenant 'acme' has no entry under tenants (known: none)"
    )
