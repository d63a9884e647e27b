"""The orchestrator serves exactly the operations of maestro/operations.py, and describes them at
/openapi.json and /docs as the document the code writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from maestro import openapi
from maestro.operations import OPERATIONS
from maestro.settings import Settings
from tests.services.orchestrator.support import orchestrator


@pytest.fixture
async def base(settings: Settings) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with orchestrator(settings) as port, aiohttp.ClientSession() as http:
        yield http, f"http://127.0.0.1:{port}"


async def test_the_routes_served_are_the_operations_documented(
    base: tuple[aiohttp.ClientSession, str],
) -> None:
    http, url = base
    async with http.get(url + "/") as resp:
        links = (await resp.json())["links"]
    served = {(method, path) for path, methods in links.items() for method in methods} | {("GET", "/")}
    documented = {(op.method, op.path) for op in OPERATIONS}
    assert served == documented


async def test_openapi_json_is_the_document_the_table_writes(base: tuple[aiohttp.ClientSession, str]) -> None:
    http, url = base
    async with http.get(url + "/openapi.json") as resp:
        assert (resp.status, resp.content_type) == (200, "application/json")
        assert await resp.json() == openapi.document()


async def test_the_reference_page_is_html_naming_every_operation(
    base: tuple[aiohttp.ClientSession, str],
) -> None:
    http, url = base
    async with http.get(url + "/docs") as resp:
        assert (resp.status, resp.content_type, resp.charset) == (200, "text/html", "utf-8")
        page = await resp.text()
    assert page.lstrip().lower().startswith("<!doctype html>")
    missing = [op.id for op in OPERATIONS if op.id not in page]
    assert missing == []
