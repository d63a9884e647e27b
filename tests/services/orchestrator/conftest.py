"""Fixtures for the orchestrator's tests: the service running in-process, and the task records bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.js.kv import KeyValue

from maestro import topics
from maestro.bus import Bus
from maestro.settings import Settings
from tests.services.orchestrator.support import orchestrator


@pytest.fixture
async def port(settings: Settings) -> AsyncIterator[int]:
    """The orchestrator, running and ready; yields its HTTP port."""
    async with orchestrator(settings) as bound:
        yield bound


@pytest.fixture
async def records(bus: Bus) -> KeyValue:
    """The task records bucket, for reading what the orchestrator wrote."""
    return await bus.js.key_value(topics.BUCKET_TASKS)
