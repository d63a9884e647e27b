"""A deterministic backend with no network: role-shaped text derived from the prompt, tokens ~ chars / 4."""

from __future__ import annotations

from collections.abc import Sequence

from proto.v1 import Role, Usage
from services.agents.backends.base import Completion, Schema, Turn, UnservedModel

MODEL = "offline"
_SUBJECT_CHARS = 80


def count_tokens(text: str) -> int:
    """A rough token count: one token per four characters, rounded up."""
    return (len(text) + 3) // 4


def subject_of(prompt: str) -> str:
    """The first non-blank line of a prompt, trimmed to a short subject."""
    for line in prompt.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= _SUBJECT_CHARS else line[: _SUBJECT_CHARS - 1].rstrip() + "…"
    return "the task"


def _plan(subject: str, prompt: str) -> str:
    steps = [
        f"Restate the goal and how to tell it is done: {subject}",
        "List the inputs, the outputs and the edge cases",
        "Lay out the project: package, entry point, tests",
        "Implement the core logic as small, typed functions",
        "Write tests for the main path and each edge case",
        "Document how to install and use it",
    ]
    # A command the prompt gives (`$ make test`) becomes a step that runs it, as a model's plan would.
    steps += [
        f"Run `{line[2:].strip()}` and check it succeeds"
        for line in prompt.splitlines()
        if line.startswith("$ ")
    ]
    return "\n".join(f"{n}. {step}" for n, step in enumerate(steps, 1))


def _code(subject: str) -> str:
    title = subject.replace("\\", "\\\\").replace('"""', "'''")
    return f'''"""{title}"""

from __future__ import annotations

import sys


def run(text: str) -> dict[str, int]:
    """Count each word of `text`, case-insensitively."""
    counts: dict[str, int] = {{}}
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    """Read stdin, print each word with its count, most frequent first."""
    counts = run(sys.stdin.read())
    for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"{{count}} {{word}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


def _doc(subject: str) -> str:
    return (
        f"# {subject}\n\n"
        "## Overview\n\n"
        f"This document describes {subject[0].lower() + subject[1:]}.\n\n"
        "## Usage\n\n"
        "```sh\npython -m app --help\n```\n\n"
        "## Behaviour\n\n"
        "- Input is read from standard input.\n"
        "- Results are printed one per line.\n"
        "- Exit code 0 means success.\n"
    )


def _text(role: Role, prompt: str) -> str:
    subject = subject_of(prompt)
    match role:
        case "planner":
            return _plan(subject, prompt)
        case "scaffolder":
            return f"A small Python project for: {subject}."
        case "implementer":
            return _code(subject)
        case "tester":
            return "Reproduce a failure by running its command in a clean checkout."
        case "reviewer":
            return "Checked size, long lines, leftover markers and whitespace; fix the findings first."
        case "doc-writer":
            return _doc(subject)


class OfflineBackend:
    """Deterministic, role-shaped answers; the same role and prompt always give the same completion.

    It answers for every model it is told to serve (MAESTRO_MODELS), the first by default, and its usage
    names the model asked for, so a task is billed at its model's price and counted against its limits.
    """

    def __init__(self, models: Sequence[str] = (MODEL,)) -> None:
        self.models = tuple(models) or (MODEL,)

    def serves(self, model: str | None) -> bool:
        """Whether `model` is one of the models this backend answers for (None: the default is)."""
        return model is None or model in self.models

    async def complete(
        self,
        role: Role,
        prompt: str,
        model: str | None,
        *,
        system: str = "",
        schema: Schema | None = None,
        history: Sequence[Turn] = (),
    ) -> Completion:
        """The role-shaped text for `prompt`, as `model` (None: the first served model); `system`, `schema`
        and `history` are not read (the answer depends on the role and the prompt only).

        Raises UnservedModel when `model` is not served."""
        if not self.serves(model):
            raise UnservedModel(f"model {model!r} is not served here; served: {', '.join(self.models)}")
        text = _text(role, prompt)
        used = model or self.models[0]
        return Completion(
            text=text,
            usage=Usage(model=used, input_tokens=count_tokens(prompt), output_tokens=count_tokens(text)),
        )
