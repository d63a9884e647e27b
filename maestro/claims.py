"""Task identity: the first request seen with an id owns it, forever, across tenants (docs/ARCHITECTURE.md).

The claim is a KV entry created once (compare-and-set on "no entry"), so two submitters racing for one id
cannot both win, and it outlives every stream's duplicate window and a server restart. The edge that sees a
request first claims it: the HTTP API answers a conflict with 409, the guard dead-letters it with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
from enum import Enum

import msgspec
from nats.js.errors import NotFoundError

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import MaestroError, Retry, WrongRevision
from proto.v1.tasks import TaskClaim, TaskRequest

_canonical = msgspec.json.Encoder(order="sorted")
# A claim that exists but cannot be read yet (a bucket's leader moving) is read again after these pauses.
_REREAD_S = (0.05, 0.1, 0.2, 0.4, 0.8)


class IdConflict(MaestroError):
    """The id belongs to another tenant's task, or to a request with other content; the text says which."""


class Seen(Enum):
    """What a claim found: the id is new (this request now owns it) or this same request owned it already."""

    NEW = "new"
    AGAIN = "again"


def digest(message: msgspec.Struct) -> str:
    """A fingerprint of a message's content (a request, a workflow), the same however its fields and labels
    were ordered."""
    return hashlib.sha256(_canonical.encode(message)).hexdigest()[:32]


def digest_of_bytes(data: bytes) -> str:
    """A fingerprint of a request that could not be read as one (its raw bytes)."""
    return "raw:" + hashlib.sha256(data).hexdigest()[:28]


async def claim(
    bus: Bus, task_id: str, tenant: str, fingerprint: str, *, claimed_by_sender: bool = False
) -> Seen:
    """Own `task_id` for this tenant and content, or find that this same request owns it already.

    `claimed_by_sender`: the request says its sender claimed the id before publishing it (the SDK, the API
    and workflows do, `topics.HEADER_CLAIMED`), so the owner is read first instead of trying a create that
    would fail; the word only orders the steps: what is read is checked the same way, and with no owner
    the id is claimed here.

    Raises IdConflict when another tenant or other content owns it, Retry when the owner cannot be read
    right now.
    """
    if claimed_by_sender:
        owner = await owner_of(bus, task_id)
        if owner is not None:
            return _seen_again(task_id, owner, tenant, fingerprint)
    wanted = TaskClaim(tenant=tenant, digest=fingerprint)
    try:
        await bus.streams.compare_and_set(topics.BUCKET_CLAIMS, task_id, codec.encode(wanted), None)
        return Seen.NEW
    except WrongRevision:
        pass
    owner = await owner_of(bus, task_id)
    for delay in _REREAD_S:
        if owner is not None:
            break
        await asyncio.sleep(delay)
        owner = await owner_of(bus, task_id)
    if owner is None:
        # The entry exists (the create lost) but cannot be read yet: a leader moving in a cluster. Nothing
        # is decided; the caller tries again later.
        raise Retry(0.5, f"the claim on task id {task_id} cannot be read yet")
    return _seen_again(task_id, owner, tenant, fingerprint)


def _seen_again(task_id: str, owner: TaskClaim, tenant: str, fingerprint: str) -> Seen:
    """AGAIN when `owner` is this tenant with this content; raises IdConflict otherwise."""
    if owner.tenant != tenant:
        raise IdConflict(f"task id {task_id} belongs to another tenant's task")
    if owner.digest != fingerprint:
        raise IdConflict(f"task id {task_id} was already used for a request with other content")
    return Seen.AGAIN


async def owner_of(bus: Bus, task_id: str) -> TaskClaim | None:
    """Who owns a task id, or None when nobody has claimed it (read from the bucket's leader)."""
    try:
        raw = await bus.js.get_msg(
            topics.kv_stream(topics.BUCKET_CLAIMS), subject=topics.kv_subject(topics.BUCKET_CLAIMS, task_id)
        )
    except NotFoundError:
        return None
    return codec.decode(TaskClaim, raw.data) if raw.data else None


async def claim_request(bus: Bus, request: TaskRequest, *, claimed_by_sender: bool = False) -> Seen:
    """claim() for a request that decoded; raises IdConflict as claim() does."""
    return await claim(bus, request.id, request.tenant, digest(request), claimed_by_sender=claimed_by_sender)
