"""Following one key of a KV bucket: every value it takes, as it takes it, across lost watches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from maestro.cancels import raise_swallowed_cancel

log = logging.getLogger(__name__)

RETRY_S = 1.0
"""How long to wait before watching again after a watch failed."""


async def follow_key(
    kv: KeyValue, key: str, offer: Callable[[bytes | None, int], object], stopping: asyncio.Event
) -> None:
    """Hand `offer` each value `key` takes (None: deleted or purged) with its revision, starting with the
    current one, until `stopping` is set; a watch that fails is started again (the current value is offered
    again then: `offer` tells a revision it has seen)."""
    await follow_keys(kv, key, lambda _, value, revision: offer(value, revision), stopping)


async def follow_keys(
    kv: KeyValue, keys: str, offer: Callable[[str, bytes | None, int], object], stopping: asyncio.Event
) -> None:
    """Like follow_key, for every key matching `keys` (`>`: all): `offer` gets the key too.

    It ends when `stopping` is set, and when cancelled even if nats-py swallowed the cancel
    (maestro/cancels.py): a watcher cancelled as it started would otherwise wait for its next entry for ever,
    and the task group or the service's stop that cancelled it with it.
    """
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        while not stopping.is_set():
            watcher = None
            try:
                watcher = await kv.watch(keys)
                raise_swallowed_cancel()
                while (entry := await _next_entry(watcher, stopped)) is not _ENDED:
                    if entry is None:
                        continue  # the end of the initial values
                    deleted = entry.operation in (KV_DEL, KV_PURGE)
                    offer(entry.key, None if deleted else entry.value, entry.revision or 0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("watching %s failed (%r); watching again", keys, exc)
            finally:
                if watcher is not None:
                    with contextlib.suppress(Exception):
                        await watcher.stop()  # type: ignore[no-untyped-call]
            raise_swallowed_cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stopped), RETRY_S)
    finally:
        stopped.cancel()


_ENDED = object()
"""What _next_entry answers when the watch ended or `stopped` came first."""


async def _next_entry(watcher: KeyValue.KeyWatcher, stopped: asyncio.Future[Any]) -> Any:
    """The watcher's next entry (None: the end of the initial values), or _ENDED."""
    following = asyncio.ensure_future(watcher.__anext__())  # type: ignore[no-untyped-call]
    # Left behind, it may still end (with StopAsyncIteration, once the watcher stops): nobody asks for that.
    following.add_done_callback(_forget)
    try:
        await asyncio.wait({following, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        following.cancel()
        raise
    if not following.done():
        following.cancel()
        return _ENDED
    try:
        return following.result()
    except StopAsyncIteration:
        return _ENDED


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
