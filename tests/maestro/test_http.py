"""Every service's HTTP face as a client meets it: every answer JSON, errors included; 405 with Allow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from maestro.http import health_routes, serving_http

LIMIT = 1024


async def _ready() -> bool:
    return True


async def _echo(request: web.Request) -> web.Response:
    return web.json_response({"size": len(await request.read())})


async def _broken(_: web.Request) -> web.Response:
    raise RuntimeError("a bug with a secret in it: hunter2")


async def _slow(_: web.Request) -> web.Response:
    raise TimeoutError("NATS did not answer")


@dataclass(frozen=True)
class Site:
    http: aiohttp.ClientSession
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.http.request(method, self.base + path, **kw) as resp:
            assert resp.content_type == "application/json", (resp.status, await resp.text())
            return resp.status, await resp.json(), resp


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    routes = [
        *health_routes(CollectorRegistry(), _ready),
        web.post("/v1/echo", _echo),
        web.put("/v1/echo", _echo),
        web.get("/v1/broken", _broken),
        web.get("/v1/slow", _slow),
    ]
    async with (
        serving_http("127.0.0.1", 0, routes, client_max_size=LIMIT, service="test") as port,
        aiohttp.ClientSession() as http,
    ):
        yield Site(http, port)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/healthz", {"GET"}),
        ("DELETE", "/readyz", {"GET"}),
        ("PUT", "/metrics", {"GET"}),
        ("GET", "/v1/echo", {"POST", "PUT"}),
        ("POST", "/", {"GET"}),
    ],
)
async def test_a_wrong_method_is_a_405_whose_allow_header_lists_the_path_s_methods(
    site: Site, method: str, path: str, allowed: set[str]
) -> None:
    status, answer, resp = await site.call(method, path)
    assert status == 405
    assert {m.strip() for m in resp.headers["Allow"].split(",")} == allowed
    assert method in answer["error"] and path in answer["error"]


async def test_an_unknown_path_is_a_json_404_naming_it(site: Site) -> None:
    for path in ("/nothing", "/v1/nothing/here", "/healthz/"):
        status, answer, _ = await site.call("GET", path)
        assert status == 404 and path in answer["error"]


async def test_a_body_over_the_size_limit_is_a_json_413(site: Site) -> None:
    status, answer, _ = await site.call("POST", "/v1/echo", data=b"x" * (LIMIT + 1))
    assert status == 413 and str(LIMIT) in answer["error"]
    assert (await site.call("POST", "/v1/echo", data=b"x" * LIMIT))[:2] == (200, {"size": LIMIT})


async def test_a_handler_that_fails_is_a_json_500_that_gives_nothing_away(site: Site) -> None:
    status, answer, _ = await site.call("GET", "/v1/broken")
    assert status == 500
    assert answer == {"error": "internal error"}


async def test_a_handler_that_timed_out_is_a_json_503_to_try_again(site: Site) -> None:
    status, answer, _ = await site.call("GET", "/v1/slow")
    assert (status, answer) == (503, {"error": "timed out; try again"})


async def test_the_root_is_a_json_index_of_the_service_s_routes(site: Site) -> None:
    status, index, _ = await site.call("GET", "/")
    assert status == 200
    assert index["service"] == "test" and index["version"]
    assert index["links"]["/healthz"] == ["GET"]
    assert index["links"]["/v1/echo"] == ["POST", "PUT"]
    assert index["links"]["/v1/slow"] == ["GET", "HEAD"]
    assert "/" not in index["links"]


async def test_healthz_readyz_and_metrics_still_answer(site: Site) -> None:
    assert (await site.call("GET", "/healthz"))[:2] == (200, {"status": "ok"})
    assert (await site.call("GET", "/readyz"))[:2] == (200, {"status": "ready"})
    async with site.http.get(site.base + "/metrics") as resp:
        assert resp.status == 200 and resp.content_type.startswith("text/plain")


async def test_not_ready_is_a_503_whose_body_says_why_like_every_error() -> None:
    async def never() -> bool:
        return False

    async with (
        serving_http("127.0.0.1", 0, health_routes(CollectorRegistry(), never)) as port,
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as resp,
    ):
        assert resp.status == 503
        answer = await resp.json()
        assert answer["status"] == "not ready" and answer["error"]


async def test_a_service_s_own_route_replaces_the_shared_one_of_the_same_method_and_path() -> None:
    async def readyz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "more": True})

    routes = [*health_routes(CollectorRegistry(), _ready), web.get("/readyz", readyz)]
    async with (
        serving_http("127.0.0.1", 0, routes) as port,
        aiohttp.ClientSession() as http,
    ):
        site = Site(http, port)
        assert (await site.call("GET", "/readyz"))[:2] == (200, {"status": "ready", "more": True})
        assert (await site.call("GET", "/"))[1]["service"] == "maestro"
