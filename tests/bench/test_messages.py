"""NATS messages per client, as a real nats-server counts them on its monitoring endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from bench.messages import HARNESS, MessageMeter, Traffic, line, total
from maestro.embedded import running_nats_server


async def test_each_clients_messages_are_counted_from_the_start_of_the_meter(tmp_path: Path) -> None:
    with running_nats_server(tmp_path / "js", monitored=True) as server:
        assert server.monitor_url is not None
        sender = await nats.connect(server.url, name="maestro-guard")
        receiver = await nats.connect(server.url, name="bench-pipeline")
        try:
            await receiver.subscribe("demo")
            await receiver.flush()
            before = await MessageMeter(server.monitor_url).start()
            await sender.publish("demo", b"before")
            await sender.flush()
            # What the server counts is what is asked: it is waited for there, not at the subscriber.
            await counted(before, {"guard": Traffic(1, 0), HARNESS: Traffic(0, 1)})
            meter = await MessageMeter(server.monitor_url).start()
            for _ in range(3):
                await sender.publish("demo", b"counted")
            await sender.flush()
            traffic = await counted(meter, {"guard": Traffic(3, 0), HARNESS: Traffic(0, 3)})
        finally:
            await sender.close()
            await receiver.close()
    assert traffic == {"guard": Traffic(sent=3, received=0), HARNESS: Traffic(sent=0, received=3)}
    assert total(traffic, leave_out=(HARNESS,)) == Traffic(3, 0)
    assert line(traffic, 3).startswith(
        "guard 1.00/0.00, harness 0.00/1.00, services total 1.0, with the harness 2.0"
    )


async def counted(
    meter: MessageMeter, expected: dict[str, Traffic], within: float = 10.0
) -> dict[str, Traffic]:
    """What `meter` counts once it counts `expected` (or, after `within` seconds, what it counts then)."""
    deadline = asyncio.get_running_loop().time() + within
    # The server's counts change with nothing to wait on but its monitoring endpoint: they are read again.
    while (traffic := await meter.spent()) != expected and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return traffic
