"""The lone-message floors run their children, offer each rate and say what each child spent."""

from __future__ import annotations

from bench import wakeup


async def test_both_floors_answer_every_request_and_are_reported() -> None:
    costs = await wakeup.run(rates=(200.0,), duration_s=0.25)
    assert [(c.floor, c.rate, c.requests) for c in costs] == [
        (wakeup.ECHO, 200.0, 50),
        (wakeup.RESPONDER, 200.0, 50),
    ]
    assert all(c.cpu_us_per_msg >= 0 for c in costs)
    lines = wakeup.describe(costs)
    assert len(lines) == 2
    assert "asyncio echo" in lines[0] and "at 200/s" in lines[0]
    assert "nats-py responder" in lines[1]
