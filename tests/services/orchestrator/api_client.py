"""A client of the orchestrator's HTTP API for tests: every answer must be JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Api:
    http: aiohttp.ClientSession
    base: str

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.base + path, **kw) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()

    async def answer(self, method: str, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        """call(), with the response itself for its headers."""
        async with self.http.request(method, self.base + path, **kw) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json(), resp
