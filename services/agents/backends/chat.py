"""A backend for any server that speaks OpenAI's Chat Completions protocol (OpenAI, Azure OpenAI, vLLM,
Ollama, LiteLLM's proxy, OpenRouter): `POST <base url>/chat/completions` over aiohttp.

A call that meets a 429, a 408, a 5xx, an answer that does not parse, a lost connection or a time-out is tried
again (the server's Retry-After, else a jittered exponential back-off), within a count of retries and a total
time; then it fails with ModelFailed(retryable=True). Any other 4xx fails at once, retryable=False. The API
key is sent as a bearer token and never appears in a log line, an exception or a repr.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import msgspec

from maestro.estimates import count_tokens
from proto.v1 import Role, Usage
from proto.v1.ids import MAX_TOKENS
from services.agents.backends.backoff import Backoff, retried, retry_after_s
from services.agents.backends.base import Completion, ModelFailed, Schema, Turn, UnservedModel
from services.agents.backends.conversation import Message, messages, prompt_tokens

log = logging.getLogger(__name__)

JsonMode = Literal["schema", "object", "none"]
_ERROR_CHARS = 300
"""Of a server's error message, what is kept in the failure (and so in the task's events)."""


class ApiKey:
    """A secret sent to the model server; its repr and str hide it (`reveal()` is the one way to read it)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return "ApiKey(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class ChatConfig:
    """Where the model server is and how to call it (built from Settings by backends.choice)."""

    base_url: str
    models: tuple[str, ...]
    """Maestro's names of the models served (MAESTRO_MODELS), the default first."""
    key: ApiKey | None = None
    """The bearer token (None: none is sent, as a local server needs)."""
    model_ids: Mapping[str, str] = field(default_factory=dict)
    """The server's id of a Maestro model name; a name not listed is sent as it is."""
    role_models: Mapping[str, str] = field(default_factory=dict)
    """The model a role runs on when a call names none."""
    max_tokens: int = 1024
    """The most tokens an answer may have when the caller gives no bound (MAESTRO_ESTIMATE_OUTPUT_TOKENS)."""
    connect_timeout_s: float = 10.0
    """Longest wait to connect (MAESTRO_MODEL_CONNECT_TIMEOUT_S)."""
    read_timeout_s: float = 120.0
    """Longest wait for the server's next bytes once a call is sent (MAESTRO_MODEL_READ_TIMEOUT_S)."""
    retries: int = 4
    """Tries after the first one of a call that got no usable answer (MAESTRO_MODEL_RETRIES)."""
    retry_total_s: float = 300.0
    """Longest a call may take with its retries and waits (MAESTRO_MODEL_RETRY_TOTAL_S)."""
    json_mode: JsonMode = "schema"
    """How a JSON answer is asked for (MAESTRO_MODEL_JSON)."""
    backoff: Backoff = field(default_factory=Backoff)
    """The waits between tries when the server gives no Retry-After."""


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None


class _Choice(msgspec.Struct):
    message: _Message


class _Answer(msgspec.Struct):
    choices: list[_Choice] = []
    usage: dict[str, Any] | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


class _Unanswered(Exception):
    """One try got no usable answer, for a reason worth another try."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


def response_format(schema: Schema, mode: JsonMode) -> dict[str, Any] | None:
    """The response_format that asks for a JSON document of `schema` (None in mode `none`). A schema whose
    root is a `$ref` (as msgspec writes one for a Struct) is inlined at the root, as OpenAI requires an
    object there."""
    if mode == "none":
        return None
    if mode == "object":
        return {"type": "json_object"}
    root = dict(schema)
    name = str(root.get("title") or "answer")
    ref = root.get("$ref")
    defs = root.get("$defs")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(defs, Mapping):
        name = ref.removeprefix("#/$defs/")
        target = defs.get(name)
        if isinstance(target, Mapping):
            root = {**target, "$defs": defs}
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64] or "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": root}}


def _error_message(body: bytes) -> str:
    """The server's own words from an error answer (OpenAI's `error.message`, or `error`, `detail`,
    `message` as other servers write them), else the start of the body."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode(errors="replace").strip()[:_ERROR_CHARS]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:_ERROR_CHARS]
        for text in (error, data.get("detail"), data.get("message")):
            if isinstance(text, str):
                return text[:_ERROR_CHARS]
    return body.decode(errors="replace").strip()[:_ERROR_CHARS]


def _tokens(usage: Mapping[str, Any] | None, name: str) -> int | None:
    value = usage.get(name) if usage is not None else None
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS else None
    )


class ChatBackend:
    """Calls a Chat Completions server; one aiohttp session per backend, opened at the first call and closed
    by aclose()."""

    bounds_output: Literal[True] = True

    def __init__(self, config: ChatConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._url = config.base_url.rstrip("/") + "/chat/completions"

    def __repr__(self) -> str:
        return f"ChatBackend({self._url!r}, models={self.config.models!r})"

    def serves(self, model: str | None) -> bool:
        """Whether `model` is one of MAESTRO_MODELS (None: the default is)."""
        return model is None or model in self.config.models

    def model_for(self, role: Role, model: str | None) -> str:
        """The Maestro name of the model a call runs on: its own, else its role's, else the first served."""
        return model or self.config.role_models.get(role) or self.config.models[0]

    async def aclose(self) -> None:
        """Close the connections to the server (the next call opens new ones)."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def complete(
        self,
        role: Role,
        prompt: str,
        model: str | None,
        *,
        system: str = "",
        schema: Schema | None = None,
        history: Sequence[Turn] = (),
        max_tokens: int | None = None,
    ) -> Completion:
        """The server's answer to `prompt` (after `system` and `history`) as `model` (None: the role's, else
        the default), at most `max_tokens` long (None: the configured bound); its usage is the server's, or
        the counted tokens of what was sent and answered when the server reports none.

        Raises UnservedModel for a model not in MAESTRO_MODELS; ModelFailed when the server refuses the call
        (retryable=False) or gives no usable answer within the retries (retryable=True)."""
        name = self.model_for(role, model)
        if name not in self.config.models:
            raise UnservedModel(f"model {name!r} is not served here; served: {', '.join(self.config.models)}")
        fmt = response_format(schema, self.config.json_mode) if schema is not None else None
        sent = messages(prompt, system=system, history=history)
        body: dict[str, Any] = {
            "model": self.config.model_ids.get(name, name),
            "messages": [{"role": m.role, "content": m.content} for m in sent],
            "max_tokens": max_tokens if max_tokens is not None else self.config.max_tokens,
        }
        if fmt is not None:
            body["response_format"] = fmt
        answer = await self._answer(msgspec.json.encode(body), name)
        return self._completion(answer, name, sent)

    def _completion(self, answer: _Answer, name: str, sent: list[Message]) -> Completion:
        text = answer.choices[0].message.content or ""
        input_tokens = _tokens(answer.usage, "prompt_tokens")
        output_tokens = _tokens(answer.usage, "completion_tokens")
        return Completion(
            text=text,
            usage=Usage(
                model=name,
                input_tokens=prompt_tokens(sent) if input_tokens is None else input_tokens,
                output_tokens=count_tokens(text) if output_tokens is None else output_tokens,
            ),
        )

    async def _answer(self, body: bytes, name: str) -> _Answer:
        """The parsed answer of the first try that gives one; raises ModelFailed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.retry_total_s
        tries = 0
        while True:
            tries += 1
            try:
                return await self._try(body, name)
            except _Unanswered as exc:
                why, retry_after = self._clean(str(exc)), exc.retry_after
            wait = self.config.backoff.wait_s(tries, retry_after, self._rng)
            if tries > self.config.retries or loop.time() + wait > deadline:
                raise ModelFailed(
                    f"the model server at {self._url} gave no answer for {name} in {tries} tries: {why}",
                    retryable=True,
                )
            log.warning("model server: %s; trying %s again in %.1fs (try %d)", why, name, wait, tries + 1)
            await asyncio.sleep(wait)

    async def _try(self, body: bytes, name: str) -> _Answer:
        """One POST; raises _Unanswered for what is worth another try, ModelFailed for a refusal."""
        headers = {"Content-Type": "application/json"}
        if self.config.key is not None:
            headers["Authorization"] = f"Bearer {self.config.key.reveal()}"
        try:
            async with self._open().post(self._url, data=body, headers=headers) as response:
                status = response.status
                data = await response.read()
                retry_after = retry_after_s(response.headers.get("Retry-After"), datetime.now(UTC))
        except (aiohttp.ClientError, TimeoutError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else "connection failed"
            raise _Unanswered(f"{kind}: {type(exc).__name__}: {exc}") from None
        if status != 200:
            said = _error_message(data)
            if retried(status):
                raise _Unanswered(f"HTTP {status}: {said}", retry_after)
            raise ModelFailed(
                self._clean(f"the model server refused the call for {name} (HTTP {status}): {said}"),
                retryable=False,
            )
        try:
            answer = _ANSWER.decode(data)
        except msgspec.DecodeError as exc:
            raise _Unanswered(f"an answer that is not a chat completion: {exc}") from None
        if not answer.choices:
            raise _Unanswered("an answer without choices")
        message = answer.choices[0].message
        if message.content is None and message.refusal:
            raise ModelFailed(
                self._clean(f"the model {name} refused: {message.refusal[:_ERROR_CHARS]}"), retryable=False
            )
        return answer

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.config.connect_timeout_s,
                sock_read=self.config.read_timeout_s,
            )
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    def _clean(self, text: str) -> str:
        """`text` without the API key (a server may echo it back in an error)."""
        key = self.config.key.reveal() if self.config.key is not None else ""
        return text.replace(key, "***") if key else text
