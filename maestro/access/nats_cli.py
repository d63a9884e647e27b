"""`maestro nats-config --out DIR [--tenant T ...]`: a nats-server configuration and each principal's
credentials (maestro/access/nats_config.py), written where the operator says; run again to add tenants."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from maestro import arguments
from maestro.access import nats_config
from maestro.settings import Settings


def register(sub: Any) -> None:
    """Add the `nats-config` command to the CLI's subparsers."""
    command = sub.add_parser(
        "nats-config",
        help="write a nats-server configuration with accounts, users and permissions, and their credentials",
        description="Writes nats-server.conf (public keys only) and one seed file per principal (mode 0600): "
        "admin, guard, budget, orchestrator, agents and tenant-<T> for each tenant. Seeds already in DIR are "
        "kept, and so are the tenants they belong to: run it again with new tenants to add them, then reload "
        "the server (nats-server --signal reload).",
    )
    command.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write the files")
    command.add_argument(
        "--tenant",
        type=arguments.tenant,
        action="append",
        default=[],
        metavar="T",
        help="a tenant whose publisher gets credentials (repeat it for more)",
    )
    command.set_defaults(run=write_config)


async def write_config(settings: Settings, args: argparse.Namespace) -> int:
    """Write the files and say what each is for."""
    out: Path = args.out
    principals = nats_config.write(out, args.tenant)
    config = out / nats_config.CONFIG_FILE
    print(f"wrote {config}")
    print("credentials, one per process (MAESTRO_NATS_CREDS=<file>; keep each secret):")
    for principal in principals:
        print(f"  {principal:<24} {nats_config.seed_file(out, principal)}")
    print(f"run: nats-server -c {config} -js -sd <store dir>")
    return 0
