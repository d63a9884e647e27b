"""A small GitHub for tests: the REST calls a review makes, answered from a real git repository on disk,
speaking GitHub's shapes (a compare's `.diff`, a tarball behind a redirect, commit statuses, SARIF uploads),
and recording every call so a test can wait for what it expects."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

TOKEN = "ghp_fake0123456789"


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    path: str
    body: Any


@dataclass
class FakeGitHub:
    """The fake's state: repositories (owner/name -> a git checkout), pull requests' heads, and calls."""

    repos: dict[str, Path] = field(default_factory=dict)
    pulls: dict[tuple[str, int], str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    code_scanning: bool = True
    """False: SARIF uploads answer 403 as for a repository without code scanning."""
    url: str = ""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        """Every status posted on `sha`, in order."""
        return [c.body for c in self.calls if c.method == "POST" and c.path.endswith(f"/statuses/{sha}")]

    def latest(self, sha: str) -> dict[str, str]:
        """Each context's latest state on `sha` (what GitHub shows)."""
        return {s["context"]: s["state"] for s in self.statuses(sha)}

    def sarifs(self) -> list[dict[str, Any]]:
        """Each SARIF upload: its body, with the SARIF log unpacked under `log`."""
        found = []
        for call in self.calls:
            if call.path.endswith("/code-scanning/sarifs"):
                log = json.loads(gzip.decompress(base64.b64decode(call.body["sarif"])))
                found.append({**call.body, "log": log})
        return found

    async def until(self, check: Any, timeout: float = 30.0) -> None:
        """Wait until `check()` is true, re-checked after every call the fake answers."""
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(check)
        except TimeoutError:
            seen = [(c.method, c.path, c.body if "statuses" in c.path else "") for c in self.calls]
            raise AssertionError(f"not within {timeout}s; the calls: {seen}") from None

    def _git(self, repo: str, *args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=self.repos[repo], check=True, capture_output=True).stdout

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.add_routes(
            [
                web.get("/repos/{owner}/{name}/pulls/{number}", self._pull),
                web.get("/repos/{owner}/{name}/compare/{spec}", self._compare),
                web.get("/repos/{owner}/{name}/tarball/{sha}", self._tarball),
                web.get("/codeload/{owner}/{name}/legacy.tar.gz/{sha}", self._codeload),
                web.post("/repos/{owner}/{name}/statuses/{sha}", self._status),
                web.post("/repos/{owner}/{name}/code-scanning/sarifs", self._sarif),
            ]
        )
        return app

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        try:
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return web.json_response({"message": "Bad credentials"}, status=401)
            return await handler(request)
        finally:
            async with self.changed:
                self.calls.append(Call(request.method, request.path, body))
                self.changed.notify_all()

    def _repo(self, request: web.Request) -> str:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        if repo not in self.repos:
            raise web.HTTPNotFound(text='{"message": "Not Found"}', content_type="application/json")
        return repo

    async def _pull(self, request: web.Request) -> web.Response:
        repo, number = self._repo(request), int(request.match_info["number"])
        head = self.pulls[(repo, number)]
        return web.json_response({"number": number, "head": {"sha": head}, "state": "open"})

    async def _compare(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if request.headers.get("Accept") != "application/vnd.github.diff":
            return web.json_response({"message": "this fake serves the diff media type only"}, status=415)
        base, _, head = request.match_info["spec"].partition("...")
        diff = self._git(repo, "diff", "--no-color", f"{base}...{head}")
        return web.Response(body=diff, content_type="text/plain")

    async def _tarball(self, request: web.Request) -> web.Response:
        repo, sha = self._repo(request), request.match_info["sha"]
        raise web.HTTPFound(f"{self.url}/codeload/{repo}/legacy.tar.gz/{sha}")

    async def _codeload(self, request: web.Request) -> web.Response:
        repo, sha = self._repo(request), request.match_info["sha"]
        prefix = f"{repo.replace('/', '-')}-{sha[:7]}/"
        data = self._git(repo, "archive", "--format=tar.gz", f"--prefix={prefix}", sha)
        return web.Response(body=data, content_type="application/x-gzip")

    async def _status(self, request: web.Request) -> web.Response:
        self._repo(request)
        body = await request.json()
        if (
            body.get("state") not in ("pending", "success", "failure", "error")
            or len(body["description"]) > 140
        ):
            return web.json_response({"message": "Validation Failed"}, status=422)
        return web.json_response({"id": len(self.calls), **body}, status=201)

    async def _sarif(self, request: web.Request) -> web.Response:
        self._repo(request)
        if not self.code_scanning:
            return web.json_response({"message": "Code scanning is not enabled"}, status=403)
        return web.json_response({"id": "47177e22-5596-11eb-80a1-c1e54ef945c6", "url": "..."}, status=202)


@asynccontextmanager
async def serving(github: FakeGitHub) -> AsyncIterator[FakeGitHub]:
    """Serve the fake on a free local port for the length of a block (`github.url` is set)."""
    runner = web.AppRunner(github.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    github.url = f"http://127.0.0.1:{port}"
    try:
        yield github
    finally:
        await runner.cleanup()
