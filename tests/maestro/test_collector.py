"""The cycle collector as a service process sets it before serving: what its imports made is frozen out of
every pass, and the young generation is collected less often than CPython's default."""

from __future__ import annotations

import json
import subprocess
import sys

from maestro import collector

_PROBE = """
import gc, json
import maestro.runtime, services.orchestrator.service  # what a service imports before it serves
before = gc.get_threshold()
maestro.runtime.settle_for_serving()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_a_service_freezes_what_its_imports_made_and_collects_the_young_generation_less_often() -> None:
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    seen = json.loads(probe.stdout)
    assert seen["before"][0] == 700  # CPython's default, until the service settles
    assert seen["after"] == [collector.YOUNG_THRESHOLD, *collector.OLDER_THRESHOLDS]
    assert seen["frozen"] > 50_000  # the imports' objects: out of every collection's walk
