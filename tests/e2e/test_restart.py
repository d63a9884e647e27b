"""Invariant: restarting nats-server, even by SIGKILL, loses no task: each still reaches a terminal state."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path

from maestro.embedded import EmbeddedServer, start_nats_server
from maestro.settings import Settings
from proto.v1 import TaskRequest
from tests.e2e.conftest import open_mesh


async def test_tasks_survive_a_nats_server_killed_and_restarted(
    nats_server: EmbeddedServer, settings: Settings, tmp_path: Path
) -> None:
    restarted: list[EmbeddedServer] = []
    try:
        async with AsyncExitStack() as stack:
            client = await open_mesh(settings, stack)
            requests = [
                TaskRequest(tenant="acme", role="tester", prompt=f"t{n}", commands=["sleep 0.2"])
                for n in range(12)
            ]
            for request in requests[:6]:
                await client.submit(request)
            await asyncio.sleep(0.3)  # some are running, some queued, when the server dies

            nats_server.kill()
            await asyncio.sleep(0.5)
            server = start_nats_server(
                nats_server.store_dir, port=nats_server.port, log_file=tmp_path / "again.log"
            )
            restarted.append(server)

            async with asyncio.timeout(30):
                while True:  # the client reconnects too; submit the rest once it is back
                    try:
                        for request in requests[6:]:
                            await client.submit(request)
                        break
                    except Exception:
                        await asyncio.sleep(0.2)
            back = time.monotonic()
            records = await asyncio.gather(*(client.wait(r.id, timeout=60) for r in requests))
            assert [r.state for r in records] == ["succeeded"] * len(requests)
            # The dispatcher's reader of the waiting stream notices the lost consumer within two heartbeats:
            # 2-4 s alone, about 19 s with nats-py's default heartbeat.
            assert time.monotonic() - back < 12.0
    finally:
        for server in restarted:
            server.stop()
