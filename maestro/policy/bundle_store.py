"""The policy bundle in force: read from the maestro_policy KV bucket, followed live, pushed by the CLI.

The bucket holds ONE key, topics.POLICY_BUNDLE_KEY, whose value is the whole bundle as YAML (the
default policy and every tenant's override). One key makes a push atomic: every guard switches from
one complete bundle to the next, and a decision's version and hash name everything that judged it.

Who stored an entry travels in its topics.HEADER_PUSHED_BY header, and when is the time the server
stored it, so the value stays exactly the YAML that was pushed and entries stored before pushes kept
a name still read (by nobody known). A reset deletes the key, with the same header: the guards then
judge by the shipped bundle, the one of the Maestro they run, across upgrades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from maestro import topics
from maestro.following import follow_key
from maestro.policy.bundle import (
    Bundle,
    BundleError,
    Problem,
    load_default,
    parse,
    shipped_text,
    with_tenant,
)
from maestro.streams import WRONG_LAST_SEQUENCE
from proto.v1.guard import PolicyInForce

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 10


class StoredBundleError(BundleError):
    """The bundle in the bucket does not validate (push never stores one): its problems' lines are its own."""


@dataclass(frozen=True)
class InForce:
    """The bundle guards judge by, where it comes from, and who stored it when (as far as known)."""

    bundle: Bundle
    source: Literal["shipped", "pushed"]
    revision: int
    """KV revision of the entry (0: nothing was ever stored)."""
    by: str = ""
    """Who pushed it, or reset to the shipped bundle; empty when not known."""
    at: datetime | None = None
    """When the server stored the entry."""
    text: bytes = b""
    """The bundle's YAML as the guards parse it: the pushed value, or the shipped file."""

    def view(self) -> PolicyInForce:
        """What the SDK and GET /v1/policy show of it (`pushed_by` None when nothing was ever stored)."""
        return PolicyInForce(
            version=self.bundle.version,
            hash=self.bundle.hash,
            source=self.source,
            revision=self.revision,
            pushed_by=(self.by or None) if self.revision else None,
            pushed_at=self.at,
            tenants=tuple(sorted(self.bundle.tenants)),
            yaml=self.text.decode("utf-8", "replace"),
        )


@dataclass
class Policies:
    """The bundle guards judge by, swapped whole when a valid one arrives; a broken one is refused."""

    shipped: Bundle
    """The bundle in the repository: in force while the bucket holds none."""
    on_loaded: Callable[[Bundle], None] = lambda _: None
    on_refused: Callable[[BundleError], None] = lambda _: None
    current: Bundle = field(init=False)
    revision: int = 0
    """KV revision of the entry `current` came from (0: the shipped bundle)."""

    def __post_init__(self) -> None:
        self.current = self.shipped

    def offer(self, value: bytes | None, revision: int) -> bool:
        """Switch to the bundle in `value` (None: deleted, back to the shipped one); False when refused."""
        if revision and revision <= self.revision:
            return True  # already seen (the watcher replays the entry the initial read returned)
        if value is None:
            bundle = self.shipped
        else:
            try:
                bundle = parse(value)
            except BundleError as exc:
                log.error(
                    "refused policy bundle at revision %d; %s %s stays in force: %s",
                    revision,
                    self.current.version,
                    self.current.hash[:12],
                    exc,
                )
                self.revision = max(self.revision, revision)
                self.on_refused(exc)
                return False
        self.current, self.revision = bundle, revision
        log.info("policy bundle %s (%s) in force, revision %d", bundle.version, bundle.hash[:12], revision)
        self.on_loaded(bundle)
        return True


async def policy_bucket(js: JetStreamContext) -> KeyValue:
    """The maestro_policy bucket (topology.ensure creates it)."""
    return await js.key_value(topics.BUCKET_POLICY)


async def read(kv: KeyValue) -> tuple[bytes | None, int]:
    """The stored bundle and its revision; (None, revision) when there is none (never put, or deleted)."""
    try:
        entry = await kv.get(topics.POLICY_BUNDLE_KEY)
    except KeyNotFoundError as exc:
        deleted = getattr(exc, "entry", None)
        return None, (deleted.revision or 0) if deleted is not None else 0
    return entry.value, entry.revision or 0


async def in_force(js: JetStreamContext) -> InForce:
    """The bundle in force as the bucket has it; raises StoredBundleError when the stored one is broken."""
    try:
        msg = await js.get_last_msg(
            topics.kv_stream(topics.BUCKET_POLICY),
            topics.kv_subject(topics.BUCKET_POLICY, topics.POLICY_BUNDLE_KEY),
        )
    except NotFoundError:
        return InForce(load_default(), "shipped", 0, text=shipped_text())
    headers = msg.headers or {}
    by = headers.get(topics.HEADER_PUSHED_BY, "")
    revision = msg.seq or 0
    if headers.get(KV_OP) in (KV_DEL, KV_PURGE):
        return InForce(load_default(), "shipped", revision, by, msg.time, shipped_text())
    value = msg.data or b""
    return InForce(_stored(value), "pushed", revision, by, msg.time, value)


async def in_force_view(js: JetStreamContext) -> PolicyInForce:
    """The bundle in force as the SDK and the HTTP API show it; raises StoredBundleError like in_force()."""
    return (await in_force(js)).view()


def _stored(value: bytes) -> Bundle:
    try:
        return parse(value)
    except BundleError as exc:
        raise StoredBundleError(exc.problems) from None


async def push(js: JetStreamContext, text: bytes, tenant: str | None = None, *, by: str = "") -> Bundle:
    """Validate a bundle (or, with `tenant`, that tenant's override) and store it as `by`'s push.

    A tenant's override is merged into the stored bundle by compare-and-set on its revision, so two
    pushes at once never lose one another. Raises BundleError: problems of the override's own text have
    its lines; those only the merged bundle shows have no line (0) and the path within the override.
    """
    kv = await policy_bucket(js)
    # Parsing is CPU work in pure Python (a large or deeply nested YAML takes a second or more): in a thread,
    # so the service pushing (the orchestrator's API) keeps answering its other requests meanwhile.
    if tenant is None:
        bundle = await asyncio.to_thread(parse, text)
        await _store(js, text, by)
        return bundle
    for _ in range(_CAS_ATTEMPTS):
        stored, revision = await read(kv)
        base = _stored(stored) if stored is not None else load_default()
        assert base.file is not None
        updated = (await asyncio.to_thread(with_tenant, base.file, tenant, text)).encode()
        try:
            bundle = await asyncio.to_thread(parse, updated)
        except BundleError as exc:
            prefix = f"$.tenants.{tenant}"
            raise BundleError(
                [Problem(0, "$" + p.path.removeprefix(prefix), p.message) for p in exc.problems]
            ) from None
        try:
            await _store(js, updated, by, last=revision)
        except _LostRace:
            continue
        return bundle
    raise TimeoutError("the policy bundle kept changing while pushing; try again")


async def reset(js: JetStreamContext, *, by: str = "") -> Bundle:
    """Go back to the shipped bundle, recorded like a push (who, when); returns the shipped bundle."""
    await js.publish(
        topics.kv_subject(topics.BUCKET_POLICY, topics.POLICY_BUNDLE_KEY),
        headers={KV_OP: KV_DEL, **({topics.HEADER_PUSHED_BY: by} if by else {})},
    )
    return load_default()


class _LostRace(Exception):
    """Another push stored the key after this one read it."""


async def _store(js: JetStreamContext, value: bytes, by: str, *, last: int | None = None) -> None:
    headers = {topics.HEADER_PUSHED_BY: by} if by else {}
    if last is not None:
        headers[topics.HEADER_EXPECTED_LAST_SUBJECT_SEQ] = str(last)
    try:
        await js.publish(
            topics.kv_subject(topics.BUCKET_POLICY, topics.POLICY_BUNDLE_KEY), value, headers=headers
        )
    except APIError as exc:
        if last is not None and exc.err_code in WRONG_LAST_SEQUENCE:
            raise _LostRace from None
        raise


@asynccontextmanager
async def following(js: JetStreamContext, policies: Policies) -> AsyncIterator[Policies]:
    """Load the stored bundle now, then follow the bucket until the block ends."""
    kv = await policy_bucket(js)
    value, revision = await read(kv)
    if not revision or not policies.offer(value, revision):
        policies.on_loaded(policies.current)  # the shipped bundle is in force
    stopping = asyncio.Event()
    task = asyncio.create_task(
        follow_key(kv, topics.POLICY_BUNDLE_KEY, policies.offer, stopping), name="policy-watch"
    )
    try:
        yield policies
    finally:
        stopping.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
