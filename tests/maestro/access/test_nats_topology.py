"""Provisioning under NATS permissions: a service that may not create streams starts once they exist, and
says what is missing when they do not; the orchestrator creates them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from maestro import topology
from maestro.access import nats_config
from maestro.embedded import EmbeddedServer, start_nats_server
from maestro.runtime import connect
from maestro.settings import Settings


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, Path]]:
    auth = tmp_path / "auth"
    nats_config.write(auth)
    server = start_nats_server(tmp_path / "js", config=auth / nats_config.CONFIG_FILE)
    try:
        yield server, auth
    finally:
        server.stop()


async def test_a_service_that_may_not_create_streams_names_the_missing_one_then_starts_once_created(
    secured: tuple[EmbeddedServer, Path],
) -> None:
    server, auth = secured
    base = Settings(nats_url=server.url, request_timeout_s=0.5)

    def as_(principal: str) -> Settings:
        return dataclasses.replace(base, nats_creds=str(nats_config.seed_file(auth, principal)))

    guard = await connect(as_("guard"), "guard")
    orchestrator = await connect(as_("orchestrator"), "orchestrator")
    try:
        with pytest.raises(topology.TopologyError, match=r"MAESTRO_REQ does not exist .* may not create it"):
            await topology.ensure(guard.jetstream(timeout=0.5), base)
        await topology.ensure(orchestrator.jetstream(timeout=5), base)
        # Everything there: it creates nothing (it would be refused, and say so) and starts.
        await topology.ensure(guard.jetstream(timeout=0.5), base)
        assert await topology.is_provisioned(guard.jetstream(timeout=0.5))
    finally:
        await guard.close()
        await orchestrator.close()
