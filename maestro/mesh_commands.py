"""`maestro up` and `maestro smoke`: the whole mesh as child processes, for running and for checking."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maestro import presence, smoke
from maestro.access import nats_config, nats_permissions
from maestro.access.local_token import ensure_local_admin, local_subject
from maestro.client import open_client
from maestro.errors import MaestroError
from maestro.settings import Settings
from maestro.supervisor import (
    DEFAULT_BUDGET_REPLICAS,
    DEFAULT_NATS_PORT,
    DEFAULT_PORTS,
    Interrupted,
    Mesh,
    running_mesh,
)
from proto.v1 import ROLES

EXIT_OK = 0
EXIT_INTERRUPTED = 130
"""Stopped by a signal before the mesh was up (128 + SIGINT, as a shell reports a Ctrl-C)."""


class UsageError(MaestroError):
    """A command line that cannot be run as given."""


def register(sub: Any) -> None:
    """Add `up` and `smoke` to the CLI's subparsers."""
    up = sub.add_parser("up", help="run the whole mesh (embedded JetStream unless MAESTRO_NATS_URL is set)")
    up.add_argument("--nats-port", type=int, default=DEFAULT_NATS_PORT, help="embedded server port (0: any)")
    up.add_argument("--api-port", type=int, default=DEFAULT_PORTS["orchestrator"], help="HTTP API port")
    up.add_argument("--data-dir", help="where the embedded server keeps its data (default .maestro)")
    up.add_argument(
        "--roles",
        action="append",
        metavar="ROLE[,ROLE...]",
        help="one agent process serving these roles; repeat for more processes (default: one serving all)",
    )
    up.add_argument("--split-roles", action="store_true", help="one agent process per role")
    up.add_argument("--free-ports", action="store_true", help="pick free ports for every service")
    up.add_argument(
        "--nats-auth",
        action="store_true",
        help="run the embedded server with accounts, users and permissions (maestro nats-config), written "
        "into <data dir>/nats-auth on the first start and kept; each service gets its own credentials, the "
        "CLI finds admin's there",
    )
    up.add_argument(
        "--budget-replicas",
        type=int,
        default=DEFAULT_BUDGET_REPLICAS,
        metavar="N",
        help="budget processes, each restarted on its own (default: %(default)s, so none is a single point)",
    )
    up.add_argument(
        "--orchestrator-replicas",
        type=int,
        default=1,
        metavar="N",
        help="orchestrator processes (default: %(default)s); the first serves the API, one of them leads and "
        "dispatches, and another takes the lead over when it dies",
    )
    up.add_argument(
        "--drain-timeout",
        type=float,
        metavar="SECONDS",
        help="how long Ctrl-C lets running tasks finish before it stops what is left "
        "(default: the ack wait, at least 10 s, plus 10 s)",
    )

    smoke_cmd = sub.add_parser(
        "smoke", help="bring the mesh up, run one task per role plus a bad one, report"
    )
    smoke_cmd.add_argument("--timeout", type=float, default=120.0)

    sub.choices["up"].set_defaults(run=_up)
    sub.choices["smoke"].set_defaults(run=_smoke)


def _role_groups(specs: list[str], *, split: bool, default: Sequence[str]) -> list[list[str]]:
    groups = [[r.strip() for r in spec.split(",") if r.strip()] for spec in specs] or [list(default)]
    unknown = sorted({r for group in groups for r in group} - set(ROLES))
    if unknown or not all(groups):
        raise UsageError(f"--roles: unknown roles {unknown}; known: {', '.join(ROLES)}")
    if split:
        return [[role] for group in groups for role in group]
    return groups


async def _up(settings: Settings, args: argparse.Namespace) -> int:
    if args.data_dir:
        settings = settings.with_(data_dir=args.data_dir)
    groups = _role_groups(args.roles or [], split=args.split_roles, default=settings.roles)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The children run in sessions of their own: these reach `maestro up` alone, which drains them in order,
    # or, before the mesh is up, stops them at once.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_mesh(
            settings,
            nats_port=args.nats_port or -1,
            api_port=args.api_port,
            role_groups=groups,
            free_ports=args.free_ports,
            budget_replicas=args.budget_replicas,
            orchestrator_replicas=args.orchestrator_replicas,
            drain_s=args.drain_timeout,
            stop=stop,
            nats_auth=args.nats_auth,
        ) as mesh:
            token = (
                await ensure_local_admin(mesh.bus, mesh.data_dir, local_subject()) if settings.auth else None
            )
            _print_banner(mesh, token)
            await _say_unserved(mesh, groups)
            await stop.wait()
            print("stopping…", flush=True)
    except Interrupted:
        print("stopped before it was up.", flush=True)
        return EXIT_INTERRUPTED
    print("stopped.", flush=True)
    return EXIT_OK


def _print_banner(mesh: Mesh, token: Path | None) -> None:
    where = f"embedded JetStream, data in {mesh.data_dir / 'jetstream'}" if mesh.embedded else "external"
    print("Maestro is up.", flush=True)
    print(f"  NATS     {mesh.nats_url} ({where})")
    if mesh.auth_dir is not None:
        admin = nats_config.seed_file(mesh.auth_dir, nats_permissions.ADMIN)
        print(f"  access   NATS users and permissions in {mesh.auth_dir}; admin's credentials {admin}")
    elif mesh.embedded:
        print("  access   NATS asks for no credentials: anyone on this machine may connect (see --nats-auth)")
    print(f"  API      {mesh.api_url}/v1/tasks")
    print(f"  console  {mesh.api_url}/ui/")
    if token is not None:
        print(f'  token    {token} (admin: curl -H "Authorization: Bearer $(cat {token})" ...;')
        print("           the console asks for it: paste what the file holds)")
    else:
        print("  token    none needed: MAESTRO_AUTH=off, anyone on this machine may call the API")
    for child in mesh.children:
        print(f"  metrics  {child.name:<20} {child.url}/metrics")
    print('  try      maestro submit --tenant acme --role planner --wait "Plan a CLI that counts words"')
    print("Ctrl-C stops everything.", flush=True)


# How long `maestro up` gives its agents to announce their roles before it names the roles nobody serves.
_ANNOUNCE_S = 5.0


async def _say_unserved(mesh: Mesh, groups: list[list[str]]) -> None:
    """Name the roles no agent serves (tasks for them would wait with their budget held), once the agents
    this mesh started have announced theirs; agents elsewhere on the same NATS count too."""
    own = {role for group in groups for role in group}
    missing = await presence.roles_without_worker(mesh.bus, ROLES)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_ANNOUNCE_S):
            while own & set(missing):
                await asyncio.sleep(0.1)  # the bucket is listed, not watched (maestro/presence.py)
                missing = await presence.roles_without_worker(mesh.bus, ROLES)
    if missing:
        print(f"  no agent {', '.join(missing)}: their tasks wait, budget held, until an agent serves them")
        print("           (--roles chooses what the agents of maestro up serve; agents elsewhere count too)")


async def _smoke(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.nats_url:
        # A throw-away mesh: not recorded for the CLI to find, where it would stand beside the user's own.
        settings = settings.with_(data_dir=tempfile.mkdtemp(prefix="maestro-smoke-"), state_dir="")
    started = time.monotonic()
    async with running_mesh(settings, nats_port=-1, free_ports=True, child_logs=True) as mesh:
        print(f"mesh up in {time.monotonic() - started:.1f}s at {mesh.nats_url}", flush=True)
        async with open_client(settings.with_(nats_url=mesh.nats_url)) as client:
            return await smoke.run(client, timeout=args.timeout)
