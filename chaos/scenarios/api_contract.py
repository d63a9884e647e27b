"""api-contract: a long Schemathesis campaign against `maestro up` (chaos/contract.py), random this time.

`make test` runs a short deterministic campaign; this one draws a new seed each run (printed, so a finding
can be replayed) and runs up to 500 inputs per operation and phase, as long as the time it has allows, on a
mesh of real processes with tokens on, called with the operator's token `maestro up` made. No agent serves
the tester: fuzzed tasks carry fuzzed shell commands, which must not run on the harness's machine. Besides
what Schemathesis finds, no process of the mesh may have died under it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from pathlib import Path

from chaos import contract
from chaos.invariants import Report
from chaos.mesh import running_mesh
from maestro.access.local_token import TOKEN_FILE
from proto.v1.ids import ROLES

NAME = "api-contract"
CAMPAIGN = contract.Campaign(examples=500, workers=2, max_time_s=75)
"""Schemathesis stops at 75 s, well inside the scenario's limit (chaos/__main__.py) with the mesh's start
and stop; in that time it sends some 5,500 requests (two workers, on two cores)."""
_ROLES = ",".join(role for role in ROLES if role != "tester")


async def run_api_contract(workdir: Path) -> Report:
    """api-contract: every documented operation, valid and invalid inputs, every check, a random seed."""
    started = time.monotonic()
    campaign = dataclasses.replace(CAMPAIGN, seed=secrets.randbelow(2**31))
    async with running_mesh(workdir, {"MAESTRO_ROLES": _ROLES}) as mesh:
        before = {m.name: m.pid for m in mesh.members()}
        token_file = Path(mesh.env["MAESTRO_DATA_DIR"]) / TOKEN_FILE
        token = (await asyncio.to_thread(token_file.read_text)).strip()
        outcome = await contract.run(mesh.api_url, token, campaign, workdir / "schemathesis")
        after = {m.name: m.pid for m in mesh.members()}
    violations = outcome.findings()
    restarted = sorted(name for name, pid in before.items() if after.get(name) != pid)
    if restarted:
        violations.append(f"processes died under the campaign: {', '.join(restarted)} (logs: {mesh.logs})")
    notes = (
        f"{outcome.summary()}, seed {campaign.seed}",
        f"output.txt and report.json in {workdir / 'schemathesis'}; `st replay <id>` there replays a finding",
    )
    return Report(NAME, seconds=time.monotonic() - started, violations=tuple(violations), notes=notes)
