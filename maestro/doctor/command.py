"""`maestro doctor [--json]`: check a running Maestro and say, one line each, what is wrong and what to do.

Exit 0 when nothing is a problem (warnings alone pass), 1 on a problem, 2 when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from maestro import instances
from maestro.doctor import checks, findings, render
from maestro.doctor.gather import HoldsReader, gather, open_doctor_bus
from maestro.errors import CannotRun
from maestro.runtime import Unreachable
from maestro.settings import Settings

_HOLDS_READER = ("services.budget.sweeper", "holds_past_ttl")
"""The budget owns its ledger's format, so it reads the holds; loaded by name, as the CLI (the composition
root) loads the services' commands, since maestro imports no service."""


def register(sub: Any) -> None:
    """Add `doctor` to the CLI's subparsers."""
    doctor = sub.add_parser(
        "doctor",
        help="check a running Maestro: server, streams, consumers, DLQ, stuck tasks, holds, services, "
        "workers",
        description="Check a running Maestro and print one line per finding with what to do: the NATS server "
        "and its JetStream; every stream, consumer and bucket present with the configuration Maestro gives "
        "it (MAESTRO_STREAM_REPLICAS, ages, ack wait); consumer backlog and redeliveries; the DLQ with its "
        "newest reasons; tasks past their time-out; budget holds past their ttl; the micro services with "
        "their version and load; roles no agent serves. Exit 0 when healthy (warnings alone pass), 1 on a "
        "problem, 2 when the server cannot be reached.",
    )
    doctor.add_argument("--json", action="store_true", help="print the findings as one JSON document")
    doctor.set_defaults(run=run)


def _holds_reader() -> HoldsReader:
    module, name = _HOLDS_READER
    reader: HoldsReader = getattr(importlib.import_module(module), name)
    return reader


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Read, judge, print; the exit code."""
    try:
        async with open_doctor_bus(settings) as bus:
            facts = await gather(bus, _holds_reader())
    except (Unreachable, instances.NotFound, CannotRun) as exc:
        found = [findings.unreachable(settings.nats_url or "NATS", str(exc))]
        code = findings.EXIT_UNREACHABLE
    else:
        found = checks.diagnose(facts, settings)
        code = findings.exit_code(found)
    print(render.as_json(found, code) if args.json else render.as_table(found, code), flush=True)
    return code
