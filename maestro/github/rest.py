"""The few calls of GitHub's REST API a review makes: a commit range's diff, the files at a commit, a commit
status, and a SARIF upload to code scanning (https://docs.github.com/en/rest)."""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from maestro.errors import MaestroError, Retry
from maestro.github.config import GithubConfig

log = logging.getLogger(__name__)

StatusState = Literal["pending", "success", "failure", "error"]
MAX_DESCRIPTION = 140
"""GitHub refuses a status whose description is longer."""
API_VERSION = "2022-11-28"
_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)


class GitHubError(MaestroError):
    """GitHub answered with an error (or did not answer: status 0); the text says which call and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def transient(self) -> bool:
        """Whether the same call may well succeed later (no answer, rate limited, or GitHub failed)."""
        return self.status == 0 or self.status == 429 or self.status >= 500


@dataclass(frozen=True)
class CommitStatus:
    """One commit status: its context (`maestro/test`), state, one-line description and link."""

    context: str
    state: StatusState
    description: str
    target_url: str | None = None

    def body(self) -> dict[str, str]:
        """The JSON body of `POST /repos/{owner}/{repo}/statuses/{sha}`."""
        text = " ".join(self.description.split())
        if len(text) > MAX_DESCRIPTION:
            text = text[: MAX_DESCRIPTION - 1] + "…"
        body = {"state": self.state, "context": self.context, "description": text}
        if self.target_url:
            body["target_url"] = self.target_url
        return body


class GitHub:
    """GitHub's REST API for one configuration's token, on one HTTP session."""

    def __init__(self, session: aiohttp.ClientSession, config: GithubConfig) -> None:
        self._session = session
        self._base = config.api_url
        self._headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "maestro",
        }
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"

    async def _call(
        self, method: str, path: str, *, accept: str | None = None, body: Any = None
    ) -> tuple[int, bytes]:
        headers = dict(self._headers)
        if accept:
            headers["Accept"] = accept
        what = f"{method} {path}"
        try:
            async with self._session.request(
                method, self._base + path, headers=headers, json=body, allow_redirects=True
            ) as response:
                data = await response.read()
                if response.status >= 400:
                    raise GitHubError(response.status, f"{what}: {response.status} {_message(data)}")
                return response.status, data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GitHubError(0, f"{what}: no answer: {exc!r}") from None

    async def diff(self, repo: str, base: str, head: str) -> str:
        """The unified diff of `base...head` (what a pull request shows)."""
        _, data = await self._call(
            "GET", f"/repos/{repo}/compare/{base}...{head}", accept="application/vnd.github.diff"
        )
        return data.decode("utf-8", "replace")

    async def pull_head(self, repo: str, number: int) -> str:
        """The SHA of a pull request's head commit now (a push may have come after the one being handled)."""
        _, data = await self._call("GET", f"/repos/{repo}/pulls/{number}")
        try:
            return str(json.loads(data)["head"]["sha"]).lower()
        except (ValueError, KeyError, TypeError):
            raise GitHubError(502, f"GET /repos/{repo}/pulls/{number}: no head SHA in the answer") from None

    async def tarball(self, repo: str, sha: str) -> bytes:
        """The gzipped tar of the repository at `sha` (GitHub redirects to where it is served: followed)."""
        _, data = await self._call("GET", f"/repos/{repo}/tarball/{sha}")
        return data

    async def set_status(self, repo: str, sha: str, status: CommitStatus) -> None:
        """Post a commit status on `sha` (the same one twice is harmless: the latest per context counts)."""
        await self._call("POST", f"/repos/{repo}/statuses/{sha}", body=status.body())

    async def upload_sarif(self, repo: str, sha: str, ref: str, sarif: dict[str, Any]) -> str:
        """Upload a SARIF log to code scanning for `sha` on `ref`; answers the upload's id."""
        packed = base64.b64encode(gzip.compress(json.dumps(sarif).encode())).decode()
        body = {"commit_sha": sha, "ref": ref, "sarif": packed, "tool_name": "maestro-guard"}
        _, data = await self._call("POST", f"/repos/{repo}/code-scanning/sarifs", body=body)
        try:
            return str(json.loads(data).get("id", ""))
        except (ValueError, AttributeError):
            return ""


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message", ""))[:200]
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace")


@asynccontextmanager
async def open_github(config: GithubConfig) -> AsyncIterator[GitHub]:
    """A GitHub client for the length of a block."""
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        yield GitHub(session, config)


async def post_statuses(github: GitHub, repo: str, sha: str, statuses: Iterable[CommitStatus]) -> None:
    """Post each status on `sha`; raises Retry when GitHub may take it later. One GitHub refuses for good
    (the token lacks `statuses: write`, the repository is gone) is logged and skipped: a status is a report,
    and the review goes on without it."""
    for status in statuses:
        try:
            await github.set_status(repo, sha, status)
        except GitHubError as exc:
            if exc.transient:
                raise Retry(5.0, f"commit status {status.context} on {repo}@{sha[:12]}: {exc}") from None
            log.warning("commit status %s on %s@%s refused: %s", status.context, repo, sha[:12], exc)
