"""Ask a backend for an answer of a msgspec type: the role's instruction and the type's JSON Schema go with
the prompt, the answer is decoded strictly, and an invalid one gets exactly one repair round.

A role hands files to a model inside the prompt, each after a `--- file: <path>` line (files_prompt); the
offline backend reads them back from there (prompt_files), as a model would read them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from maestro import codec
from proto.v1 import ContextFile, Role, Usage
from services.agents.backends.base import Backend, Turn, summed

T = TypeVar("T")

FILE_MARK = "--- file: "
_FENCED = re.compile(r"^\s*```(?:json)?[ \t]*\n(.*?)\n?```\s*$", re.DOTALL | re.IGNORECASE)
_ERROR_CHARS = 2000


class InvalidAnswer(Exception):
    """The model's answer was still not a valid document of the asked type after the repair round; `usage`
    is what the two calls consumed."""

    def __init__(self, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A valid answer and what the calls for it consumed (both calls' when it was repaired)."""

    value: T
    usage: Usage
    repaired: bool = False


def instruction(system: str, schema: dict[str, object]) -> str:
    """The system instruction for a structured answer: the role's own, then the schema to answer in."""
    return (
        f"{system.strip()}\n\nAnswer with only one JSON document, no prose around it, that is valid "
        f"against this JSON Schema:\n{msgspec.json.encode(schema).decode()}"
    )


@functools.cache
def _told(type_: type[Any], system: str) -> tuple[dict[str, Any], str]:
    """A type's JSON Schema and the instruction that asks for it, made once per type and instruction (making
    a schema inspects the type's every annotation: it was a third of an agent's CPU per task)."""
    schema = msgspec.json.schema(type_)
    return schema, instruction(system, schema)


def decoded(type_: type[T], text: str) -> T:
    """The answer as a `type_` (a fenced ```json block is unwrapped first), strictly: a field the type does
    not know is an error too; raises codec.DecodeError saying what is wrong."""
    fenced = _FENCED.match(text)
    body = fenced.group(1) if fenced else text.strip()
    return codec.decode_strict(type_, body)


def _valid(type_: type[T], text: str, check: Callable[[T], str | None] | None) -> T | str:
    """The answer as a `type_`, or what is wrong with it."""
    try:
        value = decoded(type_, text)
    except codec.DecodeError as exc:
        return str(exc)[:_ERROR_CHARS]
    problem = check(value) if check is not None else None
    return value if problem is None else problem[:_ERROR_CHARS]


async def ask(
    backend: Backend,
    role: Role,
    prompt: str,
    model: str | None,
    type_: type[T],
    *,
    system: str,
    check: Callable[[T], str | None] | None = None,
) -> Answer[T]:
    """The answer to `prompt` as a `type_`; an answer that does not decode (or that `check`, a check beyond
    the schema, finds wrong: it says what is wrong, or None) is sent back once with what is wrong, and the
    second answer must be valid. `type_` must not be str (an answer is a Struct).

    Raises InvalidAnswer when it is not; whatever the backend raises (ModelFailed, UnservedModel) passes.
    """
    schema, told = _told(type_, system)  # type: ignore[arg-type]  # a class is hashable
    first = await backend.complete(role, prompt, model, system=told, schema=schema)
    value = _valid(type_, first.text, check)
    if not isinstance(value, str):
        return Answer(value, first.usage)
    problem = value
    repair = (
        f"That answer is not valid: {problem}\n"
        "Answer again with only the JSON document, valid against the schema, and nothing else."
    )
    history = (Turn("user", prompt), Turn("assistant", first.text))
    second = await backend.complete(role, repair, model, system=told, schema=schema, history=history)
    usage = summed(first.usage, second.usage)
    value = _valid(type_, second.text, check)
    if isinstance(value, str):
        raise InvalidAnswer(
            f"the model's {role} answer was not valid after one repair round: {value} "
            f"(first answer: {problem})",
            usage,
        )
    return Answer(value, usage, repaired=True)


def files_prompt(prompt: str, files: Sequence[ContextFile], *, max_chars: int = 64 * 1024) -> str:
    """`prompt`, then each file after a `--- file: <path>` line (a file longer than `max_chars` is cut,
    saying so)."""
    parts = [prompt.rstrip("\n")]
    for file in files:
        content = file.content
        if len(content) > max_chars:
            content = content[:max_chars] + f"\n[... {len(file.content) - max_chars} more characters]\n"
        parts.append(f"{FILE_MARK}{file.path}\n{content}")
    return "\n\n".join(parts)


def prompt_files(prompt: str) -> tuple[str, list[ContextFile]]:
    """The text before the first `--- file:` line and the files after it, as files_prompt wrote them."""
    head, *sections = re.split(rf"(?:^|\n\n){re.escape(FILE_MARK)}", prompt)
    files = []
    for section in sections:
        path, _, content = section.partition("\n")
        try:
            files.append(ContextFile(path=path.strip(), content=content))
        except ValueError:
            continue  # not a path a file could have: not one of ours
    return head, files
