"""Budget service messages: reserve before spending, commit what was spent, release the rest."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import MicroUsd, TaskId, Tenant, Tokens


class Usage(Message, frozen=True):
    """What a model call actually consumed."""

    model: str
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0


class Reserve(Message, frozen=True):
    """Hold an estimated amount for one task; the same task id always yields the same reservation."""

    tenant: Tenant
    task_id: TaskId
    estimate_micro_usd: MicroUsd
    estimate_tokens: Tokens = 0
    ttl_s: Annotated[float, Meta(gt=0)] = 3600.0


class Reservation(Message, frozen=True):
    """The answer to Reserve: granted with a reservation id, or refused with why."""

    tenant: Tenant
    task_id: TaskId
    granted: bool
    reservation_id: str = ""
    held_micro_usd: MicroUsd = 0
    remaining_micro_usd: int = 0
    reason: str = ""


class Commit(Message, frozen=True):
    """Charge a reservation with what was actually used; the hold is released."""

    tenant: Tenant
    reservation_id: str
    usage: Usage


class Release(Message, frozen=True):
    """Give a reservation's hold back without charging anything."""

    tenant: Tenant
    reservation_id: str


class Settlement(Message, frozen=True):
    """The answer to Commit or Release; `already_settled` means this call changed nothing."""

    tenant: Tenant
    reservation_id: str
    charged_micro_usd: MicroUsd = 0
    released_micro_usd: MicroUsd = 0
    already_settled: bool = False
    remaining_micro_usd: int = 0


class GetLedger(Message, frozen=True):
    """Ask for a tenant's ledger."""

    tenant: Tenant


class LedgerView(Message, frozen=True):
    """A tenant's ledger as anyone may read it."""

    tenant: Tenant
    limit_micro_usd: MicroUsd
    spent_micro_usd: MicroUsd
    held_micro_usd: MicroUsd
    remaining_micro_usd: int
    holds: int = 0
