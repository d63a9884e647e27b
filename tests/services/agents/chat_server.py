"""A small model server for the tests, speaking OpenAI's Chat Completions protocol (`POST
/v1/chat/completions`, a bearer key, OpenAI-style error bodies), scripted per test and recording each request
it got. By default it answers as the offline backend would for the role it is told, so every role gets an
answer it accepts, with the usage the test chose."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from proto.v1 import Role
from services.agents.backends import OfflineBackend, Turn
from services.agents.roles import doc_writer, implementer, planner, reviewer, scaffolder

KEY = "sk-test-0123456789abcdefDONOTLEAK"
"""The key the server accepts (when it checks one)."""


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, a body (None: a completion of `text`), headers, and a delay first."""

    status: int = 200
    text: str | None = None
    """The completion's text (None: what the offline backend answers the server's role)."""
    usage: tuple[int, int] | None = (123, 45)
    """The usage reported, (prompt_tokens, completion_tokens); None: the answer reports none."""
    body: bytes | None = None
    """A raw body instead of a completion (an error, a malformed answer)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """How long the server takes before it answers (a slow server, past the client's read time-out)."""


def error(status: int, message: str, kind: str = "invalid_request_error", **headers: str) -> Reply:
    """An error answer with OpenAI's body: `{"error": {"message", "type", "code"}}`."""
    body = msgspec.json.encode({"error": {"message": message, "type": kind, "code": None, "param": None}})
    return Reply(status=status, body=body, headers=headers)


@dataclass
class Received:
    """A request the server got: its headers, its JSON body, and when it came (the loop's clock)."""

    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class ChatServer:
    """The server's script and what it saw; `url` is its base URL (ends with /v1)."""

    role: Role = "planner"
    """The role whose offline answer a completion without scripted text carries."""
    roles_by_instruction: bool = False
    """Answer each request as the offline backend answers the role whose instruction its system message
    starts with (the tester, which has none, otherwise): one server for a whole chain of roles."""
    url: str = ""
    script: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=Reply)
    """What it answers once the script is used up."""
    received: list[Received] = field(default_factory=list)
    answered: list[tuple[int, int]] = field(default_factory=list)
    """The usage each completion it answered reported (those that reported none are not here)."""
    check_key: bool = True
    """Refuse a request without `Bearer KEY` with 401, as OpenAI does."""

    def then(self, *replies: Reply) -> ChatServer:
        """Answer the next requests with `replies`, in order."""
        self.script.extend(replies)
        return self

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen = Received(dict(request.headers), msgspec.json.decode(raw), asyncio.get_running_loop().time())
        self.received.append(seen)
        reply = self.script.popleft() if self.script else self.default
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if self.check_key and request.headers.get("Authorization") != f"Bearer {KEY}" and reply.status == 200:
            reply = error(401, "Incorrect API key provided: sk-tes****LEAK.", "invalid_request_error")
        if reply.body is not None or reply.status != 200:
            return web.Response(
                status=reply.status,
                body=reply.body or b"",
                headers={"Content-Type": "application/json", **reply.headers},
            )
        text = reply.text if reply.text is not None else await self._offline(seen.body)
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.received)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": seen.body.get("model"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }
        if reply.usage is not None:
            prompt_tokens, completion_tokens = reply.usage
            answer["usage"] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            self.answered.append(reply.usage)
        return web.json_response(answer, headers=reply.headers)

    async def _offline(self, body: dict[str, Any]) -> str:
        """What the offline backend answers the same conversation for the server's role."""
        sent = body["messages"]
        system = next((m["content"] for m in sent if m["role"] == "system"), "")
        turns = [Turn(m["role"], m["content"]) for m in sent[:-1] if m["role"] != "system"]
        fmt = body.get("response_format") or {}
        schema = fmt.get("json_schema", {}).get("schema")
        role = _role_instructed(system) if self.roles_by_instruction else self.role
        completion = await OfflineBackend().complete(
            role, sent[-1]["content"], None, system=system, schema=schema, history=turns
        )
        return completion.text


def _role_instructed(system: str) -> Role:
    """The role whose standing instruction `system` starts with; the tester (it has none) otherwise."""
    instructions: dict[Role, str] = {
        "planner": planner.SYSTEM,
        "scaffolder": scaffolder.SYSTEM,
        "implementer": implementer.SYSTEM,
        "reviewer": reviewer.SYSTEM,
        "doc-writer": doc_writer.SYSTEM,
    }
    return next((role for role, told in instructions.items() if system.startswith(told.strip())), "tester")


@asynccontextmanager
async def serving(server: ChatServer | None = None) -> AsyncIterator[ChatServer]:
    """`server` (a default one when None) listening on a free port of 127.0.0.1 for the length of a block."""
    server = server or ChatServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield server
    finally:
        await runner.cleanup()
