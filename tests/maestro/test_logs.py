"""Log lines are JSON with the trace id of the message being handled; trace context starts at submit."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from maestro import topics, tracing
from maestro.bus import Bus
from maestro.deliveries import Consumer, Delivery
from maestro.logs import json_handler
from proto.v1 import TaskRequest


def test_a_traceparent_carries_a_trace_id_and_junk_carries_none() -> None:
    header = tracing.new_traceparent()
    found = tracing.trace_id(header)
    assert found is not None and len(found) == 32 and header.split("-")[1] == found
    assert tracing.trace_id("not-a-traceparent") is None
    assert tracing.trace_id(None) is None


async def test_lines_logged_while_handling_a_message_carry_its_trace_id(bus: Bus) -> None:
    handled = asyncio.Event()
    log = logging.getLogger("test.handler")
    lines = io.StringIO()
    log.addHandler(json_handler(lines))
    log.propagate = False

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        log.warning("working on it", extra={"task_id": msg.id})
        handled.set()

    header = tracing.new_traceparent()
    consumer = Consumer(topics.STREAM_REQUESTS, "test-logs", topics.REQUESTS.all, TaskRequest, "test")
    await bus.streams.publish(
        topics.REQUESTS.at("acme"),
        TaskRequest(id="traced", tenant="acme", role="planner", prompt="x"),
        traceparent=header,
    )
    consuming = asyncio.create_task(bus.consumers.consume(consumer, handler))
    try:
        await asyncio.wait_for(handled.wait(), 5)
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(consuming, 5)
        log.handlers.clear()
        log.propagate = True
    line = json.loads(lines.getvalue().splitlines()[0])
    assert line["trace_id"] == tracing.trace_id(header)
    assert line["task_id"] == "traced" and line["subject"] == "maestro.v1.req.acme"
