"""NATS messages per client, as a real nats-server counts them on its monitoring endpoint."""

from __future__ import annotations

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
            sub = await receiver.subscribe("demo")
            await receiver.flush()
            await sender.publish("demo", b"before")
            await sender.flush()
            await sub.next_msg(timeout=5)
            meter = await MessageMeter(server.monitor_url).start()
            for _ in range(3):
                await sender.publish("demo", b"counted")
            await sender.flush()
            for _ in range(3):
                await sub.next_msg(timeout=5)
            traffic = await meter.spent()
        finally:
            await sender.close()
            await receiver.close()
    assert traffic == {"guard": Traffic(sent=3, received=0), HARNESS: Traffic(sent=0, received=3)}
    assert total(traffic, leave_out=(HARNESS,)) == Traffic(3, 0)
    assert line(traffic, 3).startswith(
        "guard 1.00/0.00, harness 0.00/1.00, services total 1.0, with the harness 2.0"
    )
