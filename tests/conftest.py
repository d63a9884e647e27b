"""Fixtures: a real nats-server per test (free port, its own JetStream store) and settings pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from maestro.bus import Bus
from maestro.embedded import EmbeddedServer, start_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A fresh JetStream server on a free port, stopped after the test."""
    server = start_nats_server(tmp_path / "jetstream", log_file=tmp_path / "nats-server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(nats_server: EmbeddedServer, tmp_path: Path) -> Settings:
    """Settings for services under test: this test's server, free HTTP ports, quick redelivery, and tester
    commands run as the test's own user (they prove they ran by writing to the test's tmp_path, which an
    isolated command cannot; the sandbox's own tests choose their isolation level)."""
    return Settings(
        nats_url=nats_server.url,
        sandbox="none",
        data_dir=str(tmp_path / "maestro"),
        http_port=0,
        ack_wait_s=2.0,
        request_timeout_s=2.0,
        worker="test-worker",
        # The API's own tests check its tokens (tests/services/orchestrator/test_api_access.py); the rest
        # call it as anyone, which MAESTRO_AUTH=off allows on loopback.
        auth=False,
    )


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    """A connected bus on a provisioned server, for the test itself to publish and read with."""
    async with open_bus(settings, "maestro-test") as connected:
        yield connected
