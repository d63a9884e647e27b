"""`maestro token create|list|revoke`: the API's bearer tokens, managed over NATS (admin credentials).

`create` prints the token alone on standard output, once (`TOKEN=$(maestro token create ...)`); nothing
keeps it but the caller. `list` never shows a secret: the bucket holds none.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from maestro import arguments, codec
from maestro.access.local_token import local_subject
from maestro.client import open_client
from maestro.settings import Settings
from proto.v1.access import ALL_TENANTS, SCOPES, TokenRequest, TokenView

_SPAN = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def expiry(text: str, now: datetime | None = None) -> datetime:
    """When a token given `--expires TEXT` expires: `90m`, `12h`, `30d` from now, or an ISO 8601 time (UTC
    unless it says otherwise)."""
    now = now or datetime.now(UTC)
    span = _SPAN.match(text)
    if span:
        return now + timedelta(**{_UNITS[span.group(2)]: int(span.group(1))})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a lifetime (90m, 12h, 30d) nor an ISO 8601 time: {text[:40]!r}"
        ) from None
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if at <= now:
        raise argparse.ArgumentTypeError(f"{text!r} is in the past")
    return at


def _grant_tenant(text: str) -> str:
    return text if text == ALL_TENANTS else arguments.tenant(text)


def register(sub: Any) -> None:
    """Add the `token` command group to the CLI's subparsers."""
    token = sub.add_parser("token", help="the API's bearer tokens: create, list, revoke")
    commands = token.add_subparsers(dest="token_command", required=True, metavar="SUBCOMMAND")
    create = commands.add_parser(
        "create",
        help="make a token and print it (once)",
        description="Make a bearer token for the HTTP API and print it on standard output; only its "
        "SHA-256 is kept, so it cannot be shown again. Scopes: submit (tasks and workflows, and cancel, "
        "pause, resume them), read (records and events), approve (approve or reject parked tasks), admin "
        "(all of these, and with --tenant '*' budgets, the policy bundle and every tenant's tokens).",
    )
    create.add_argument(
        "--tenant", required=True, type=_grant_tenant, help="the tenant it acts in, or '*' for every one"
    )
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=SCOPES,
        dest="scopes",
        help="what it may do (repeatable)",
    )
    create.add_argument(
        "--subject",
        default=None,
        help="who holds it, recorded as `by` of what it does (default: you, user@host)",
    )
    create.add_argument(
        "--expires", type=expiry, metavar="WHEN", help="90m, 12h, 30d, or an ISO 8601 time (default: never)"
    )
    create.set_defaults(run=_create)

    listing = commands.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--tenant", type=_grant_tenant, default=ALL_TENANTS, help="this tenant's only")
    listing.add_argument("--json", action="store_true", help="one JSON grant per line")
    listing.set_defaults(run=_list)

    revoke = commands.add_parser("revoke", help="revoke a token: it stops working at once")
    revoke.add_argument("id", help="the token's id (16 hex digits, as `token list` shows it)")
    revoke.set_defaults(run=_revoke)


async def _create(settings: Settings, args: argparse.Namespace) -> int:
    wanted = TokenRequest(
        tenant=args.tenant, scopes=tuple(args.scopes), subject=args.subject, expires_at=args.expires
    )
    async with open_client(settings) as client:
        issued = await client.create_token(wanted, by=local_subject())
    print(issued.token)
    print(f"token {issued.grant.id}: {_summary(issued.grant)}; shown once, keep it", file=sys.stderr)
    return 0


def _summary(grant: TokenView) -> str:
    expires = grant.expires_at.isoformat() if grant.expires_at else "never"
    return f"tenant {grant.tenant}, {','.join(grant.scopes)}, for {grant.subject}, expires {expires}"


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    async with open_client(settings) as client:
        views = await client.tokens(args.tenant)
    now = datetime.now(UTC)
    for view in views:
        if args.json:
            print(codec.encode(view).decode())
            continue
        expired = " (expired)" if view.expires_at is not None and view.expires_at <= now else ""
        print(f"{view.id}  {_summary(view)}{expired}")
    return 0


async def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    async with open_client(settings) as client:
        view = await client.revoke_token(args.id)
    print(f"revoked {view.id}: {_summary(view)}")
    return 0
