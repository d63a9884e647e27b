"""`python -m services.<name>`: a service whose settings are wrong says so in one line and exits at once;
a server that does not answer is reported with where its URL came from; a run that NATS ended starts again."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import aiohttp
import nats.errors
import pytest
from aiohttp import web

from maestro.bus import Bus
from maestro.children import EXIT_CONFIG
from maestro.runtime import Service, Unreachable, connect
from maestro.runtime import run_service as run_service_in_process
from maestro.settings import Settings


def run_service(module: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    # Nothing listens there: a service that went past its settings would wait for NATS, not exit.
    env |= {"MAESTRO_NATS_URL": "nats://127.0.0.1:1", "MAESTRO_HTTP_PORT": "0", **settings}
    return subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.parametrize("name", ["guard", "budget", "orchestrator", "agents"])
def test_a_bad_setting_stops_a_service_in_one_line_naming_it(name: str) -> None:
    done = run_service(f"services.{name}", MAESTRO_ACK_WAIT_S="soon")
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [
        f"maestro-{name}: error: MAESTRO_ACK_WAIT_S: expected float, got 'soon'"
    ]


@pytest.mark.parametrize("name", ["guard", "budget"])
@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("MAESTRO_PRICING", "offline=abc", "'offline=abc': expected input:output USD per million"),
        ("MAESTRO_MODELS", "gpt 4o", "['gpt 4o']: expected model ids such as gpt-4o"),
    ],
)
def test_a_price_table_or_model_list_that_cannot_be_read_stops_a_service_in_one_line(
    name: str, variable: str, value: str, said: str
) -> None:
    # The guard prices its estimates with the same table the budget charges with.
    done = run_service(f"services.{name}", **{variable: value})
    assert done.returncode == EXIT_CONFIG
    assert done.stderr.splitlines() == [f"maestro-{name}: error: {variable}: {said}"]


async def test_a_url_that_does_not_answer_is_reported_with_where_it_came_from(tmp_path: Path) -> None:
    (tmp_path / "nats.url").write_text("nats://127.0.0.1:1\n")  # left by a `maestro up` killed outright
    with pytest.raises(Unreachable) as caught:
        await connect(Settings(data_dir=str(tmp_path)), "test", patience_s=0.5)
    assert str(caught.value) == (
        f"cannot reach NATS at nats://127.0.0.1:1 (from {tmp_path / 'nats.url'}): is Maestro running?"
    )


class _Flaky:
    """A service whose serve fails with `failure` the first `times` times it runs (as a read at start-up
    does when a loaded server does not answer in time), then serves on the real server until stopped, its
    HTTP port and its connection's id noted at each run."""

    def __init__(self, failure: Exception, times: int = 1) -> None:
        self.failure, self.times = failure, times
        self.runs: list[int | None] = []
        self.serving = asyncio.Event()

    async def serve(self, bus: Bus) -> None:
        self.runs.append(bus.nc.client_id)
        if len(self.runs) <= self.times:
            raise self.failure
        self.serving.set()
        await bus.lifetime.stopped()


def _routes(flaky: _Flaky, ports: list[int]) -> Callable[[Bus], Iterable[web.RouteDef]]:
    async def port(request: web.Request) -> web.Response:
        ports.append(request.url.port or 0)
        return web.json_response({"runs": len(flaky.runs)})

    return lambda _: [web.get("/runs", port)]


async def test_a_run_that_nats_ended_starts_again_on_the_same_port_and_serves(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = _Flaky(nats.errors.TimeoutError(), times=2)
    ports: list[int] = []
    service = Service("flaky", 0, flaky.serve, _routes(flaky, ports))
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="maestro.runtime")
    running = asyncio.create_task(run_service_in_process(service, settings, stop=stop))
    await asyncio.wait_for(flaky.serving.wait(), 30)
    # A fresh connection each time, as a restarted process would have.
    assert len(flaky.runs) == 3 and len(set(flaky.runs)) == 3
    bound = [int(r.message.rsplit(":", 1)[1].split()[0]) for r in caplog.records if "serving on" in r.message]
    assert len(bound) == 3 and len(set(bound)) == 1
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{bound[0]}/runs") as answer:
        assert (await answer.json()) == {"runs": 3}
    said = [r.message for r in caplog.records if "starting again" in r.message]
    assert said == [
        "flaky: NATS did not answer (TimeoutError()); starting again in 0.5 s",
        "flaky: NATS did not answer (TimeoutError()); starting again in 1.0 s",
    ]
    # The run's own TimeoutError is not taken for a drain that overran.
    assert not [r for r in caplog.records if "did not finish in time" in r.message]
    stop.set()
    await asyncio.wait_for(running, 30)


async def test_a_run_that_failed_otherwise_ends_the_service_with_its_error(settings: Settings) -> None:
    flaky = _Flaky(ValueError("a defect, not an outage"))
    service = Service("flaky", 0, flaky.serve)
    with pytest.raises(ValueError, match="a defect, not an outage"):
        await asyncio.wait_for(run_service_in_process(service, settings), 30)
    assert len(flaky.runs) == 1


async def test_a_run_that_nats_ends_as_it_stops_stops_without_an_error(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A start-up read that times out after the stop (a loaded server while a test tears down, say) is no
    failure of the service: it stops as asked, and says why it stopped that way."""
    stop = asyncio.Event()
    serving = asyncio.Event()

    async def serve(bus: Bus) -> None:
        serving.set()
        await bus.lifetime.stopped()
        raise nats.errors.TimeoutError

    caplog.set_level(logging.WARNING, logger="maestro.runtime")
    running = asyncio.create_task(run_service_in_process(Service("slow", 0, serve), settings, stop=stop))
    await asyncio.wait_for(serving.wait(), 30)
    stop.set()
    await asyncio.wait_for(running, 30)
    assert [r.message for r in caplog.records if "as it stopped" in r.message] == [
        "slow: NATS did not answer (TimeoutError()) as it stopped"
    ]
