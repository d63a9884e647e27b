"""A deterministic backend with no network: answers shaped by the role and derived from the prompt (and the
files in it), valid for the role's schema when one is asked for; tokens ~ chars / 4.

Asked for a schema (structured.ask), it answers the JSON of the role's type: the planner a Plan that fans
out, the scaffolder a small package with a passing test, the implementer a word-counting module with its
tests (and a one-line diff to the package's `__init__.py`), the doc-writer a README section (as a diff)
or a page under docs/, the reviewer findings on the added lines of the change. Without a schema it answers
plain text, as it always did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import msgspec

from maestro.estimates import count_tokens
from proto.v1 import ContextFile, Role, Usage
from proto.v1.work import FileChanges, ModelReview, ReviewFinding
from proto.v1.workflows import Plan, Subtask
from services.agents import patches
from services.agents.backends.base import Completion, Schema, Turn, UnservedModel
from services.agents.backends.structured import prompt_files

MODEL = "offline"
_SUBJECT_CHARS = 80
_WORD = re.compile(r"[a-z0-9]+")
# Words that say what to do rather than what it is about: left out of the names of modules and packages.
_FILLER = frozenset(
    "a an the and or of for to in on with this that it its is be by as from into out lay project add "
    "build implement handle write document run make create core edge edges case cases plan step steps "
    "test tests new please".split()
)
_MAX_LINE = 110
_MARKER = re.compile(r"\b(TODO|FIXME|XXX|HACK)\b")
_DIFF_BLOCK = re.compile(r"^```diff\n(.*?)^```[ \t]*$", re.M | re.S)


def subject_of(prompt: str) -> str:
    """The first non-blank line of a prompt, trimmed to a short subject."""
    for line in prompt.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= _SUBJECT_CHARS else line[: _SUBJECT_CHARS - 1].rstrip() + "…"
    return "the task"


def identifier(text: str, words: int = 2) -> str:
    """A Python-identifier name from the first telling words of `text` (`task` when it has none)."""
    found = [w for w in _WORD.findall(text.lower()) if w not in _FILLER][:words]
    name = "_".join(found) or "task"
    return f"p_{name}" if name[0].isdigit() else name


def _free(name: str, taken: Callable[[str], bool]) -> str:
    """`name`, or `name_2`, `name_3`... the first for which `taken(candidate)` is false."""
    candidate, n = name, 1
    while taken(candidate):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


# -- plain text (no schema asked) ------------------------------------------------------------------------
def _steps(subject: str, prompt: str) -> list[tuple[str, Role, str, list[str]]]:
    """(name, role, prompt, commands) of each subtask of the offline plan."""
    steps: list[tuple[str, Role, str, list[str]]] = [
        ("layout", "scaffolder", f"Lay out the project for: {subject}", []),
        ("core", "implementer", f"Implement the core of: {subject}", []),
        ("edges", "implementer", f"Handle the edge cases of: {subject}", []),
        ("tests", "tester", f"Run the tests of: {subject}", ["python -m pytest -q"]),
        ("review", "reviewer", f"Review the changes for: {subject}", []),
        ("docs", "doc-writer", f"Document how to install and use: {subject}", []),
    ]
    # A command the prompt gives (`$ make test`) becomes a subtask that runs it, as a model's plan would.
    commands = [
        line[2:].strip() for line in prompt.splitlines() if line.startswith("$ ") and line[2:].strip()
    ]
    steps += [
        (f"run_{n}", "tester", f"Run `{c}` and check it succeeds", [c]) for n, c in enumerate(commands, 1)
    ]
    return steps


def _plan(subject: str, prompt: str) -> Plan:
    subtasks = []
    previous: str | None = None
    for name, role, text, commands in _steps(subject, prompt):
        needs = [previous] if previous and not name.startswith("run_") else []
        subtasks.append(Subtask(name=name, role=role, prompt=text, needs=needs, commands=commands))
        if not name.startswith("run_"):
            previous = name
    return Plan(subtasks=subtasks)


def _code(subject: str) -> str:
    title = subject.replace("\\", "\\\\").replace('"""', "'''")
    return f'''"""{title}"""

from __future__ import annotations

import sys


def count_words(text: str) -> dict[str, int]:
    """Count each word of `text`, case-insensitively."""
    counts: dict[str, int] = {{}}
    # TODO: split on punctuation too, not only on whitespace
    for word in text.lower().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    """Read stdin, print each word with its count, most frequent first."""
    counts = count_words(sys.stdin.read())
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
            plan = _plan(subject, prompt).subtasks
            return "\n".join(f"{n}. {s.prompt}" for n, s in enumerate(plan, 1))
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
        case _:
            raise ValueError(f"no agent does the work of {role}: a person does")


# -- structured (a schema asked) -------------------------------------------------------------------------
def _package(files: Mapping[str, str]) -> str | None:
    """The project's first package (a top-level folder with an `__init__.py`, not tests)."""
    found = sorted(p.split("/")[0] for p in files if p.count("/") == 1 and p.endswith("/__init__.py"))
    return next((p for p in found if p not in ("tests", "test")), None)


def _scaffold(subject: str, files: Mapping[str, str]) -> FileChanges:
    name = _free(identifier(subject), lambda n: f"{n}/__init__.py" in files or f"tests/test_{n}.py" in files)
    dist = name.replace("_", "-")
    new = {
        "README.md": f"# {dist}\n\n{subject}\n",
        "pyproject.toml": (
            '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{dist}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n\n'
            '[tool.pytest.ini_options]\npythonpath = ["."]\n'
        ),
        f"{name}/__init__.py": f'"""{dist}."""\n\n__version__ = "0.1.0"\n',
        f"tests/test_{name}.py": (
            f"import {name}\n\n\ndef test_it_has_a_version() -> None:\n    assert {name}.__version__\n"
        ),
    }
    return FileChanges(
        summary=f"Laid out {dist}: a package, its metadata and a first test.",
        files=[ContextFile(path=p, content=c) for p, c in new.items() if p not in files],
        commands=["python -m pytest -q"],
    )


def _implement(subject: str, files: Mapping[str, str]) -> FileChanges:
    package = _package(files)
    where = f"{package}/" if package else ""
    name = _free(identifier(subject), lambda n: f"{where}{n}.py" in files or f"tests/test_{n}.py" in files)
    module = f"{package}.{name}" if package else name
    test = (
        f"from {module} import count_words\n\n\n"
        "def test_each_word_is_counted_case_insensitively() -> None:\n"
        '    assert count_words("To be or not to BE") == {"to": 2, "be": 2, "or": 1, "not": 1}\n\n\n'
        "def test_no_words_count_nothing() -> None:\n"
        '    assert count_words("  ") == {}\n'
    )
    diff = ""
    if package:
        init = f"{package}/__init__.py"
        old = files[init]
        joint = "" if not old or old.endswith("\n") else "\n"
        diff = patches.file_diff(init, old, f"{old}{joint}from {package} import {name} as {name}\n")
    return FileChanges(
        summary=f"Added {where}{name}.py (count_words) with its tests"
        + (f", exported from {package}." if package else "."),
        files=[
            ContextFile(path=f"{where}{name}.py", content=_code(subject)),
            ContextFile(path=f"tests/test_{name}.py", content=test),
        ],
        diff=diff,
        commands=["python -m pytest -q"],
    )


def _docstring(code: str) -> str:
    match = re.match(r'\s*(?:"""|\'\'\')\s*(.*?)\s*(?:\n|"""|\'\'\')', code)
    return match.group(1).strip() if match else ""


def _document(subject: str, files: Mapping[str, str]) -> FileChanges:
    modules = sorted(p for p in files if p.endswith(".py") and not p.startswith("tests/") and "/" in p)
    listed = [
        f"- `{p}`: {_docstring(files[p]) or 'no docstring'}" for p in modules if not p.endswith("__init__.py")
    ]
    heading = f"## {subject}"
    readme = files.get("README.md")
    if readme is not None and heading not in readme:
        section = [heading, "", f"What changed for {subject[0].lower() + subject[1:]}:", ""]
        section += listed or ["- no Python modules yet"]
        joint = "\n" if readme.endswith("\n") else "\n\n"
        new = f"{readme}{joint}{chr(10).join(section)}\n"
        return FileChanges(
            summary=f"Added the section {heading!r} to README.md.",
            diff=patches.file_diff("README.md", readme, new),
        )
    path = f"docs/{_free(identifier(subject), lambda n: f'docs/{n}.md' in files)}.md"
    return FileChanges(summary=f"Wrote {path}.", files=[ContextFile(path=path, content=_doc(subject))])


def _review(head: str, files: Mapping[str, str]) -> ModelReview:
    diffs = _DIFF_BLOCK.findall(head)
    try:
        added = patches.added_lines(diffs[0]) if diffs else {}
    except patches.PatchError:
        added = {}
    findings: list[ReviewFinding] = []
    for path in sorted(added):
        lines = files.get(path, "").splitlines()
        for n in sorted(added[path]):
            line = lines[n - 1] if n <= len(lines) else ""
            if len(line) > _MAX_LINE:
                findings.append(
                    ReviewFinding(
                        path=path, line=n, message=f"line is {len(line)} characters (over {_MAX_LINE})"
                    )
                )
            if marker := _MARKER.search(line):
                findings.append(ReviewFinding(path=path, line=n, message=f"leftover {marker.group(1)}"))
            if line != line.rstrip():
                findings.append(
                    ReviewFinding(path=path, line=n, severity="note", message="trailing whitespace")
                )
    summary = f"Checked {len(added)} changed files for long lines, leftover markers and trailing whitespace."
    return ModelReview(summary=summary, findings=findings)


def _structured(role: Role, prompt: str) -> str:
    head, given = prompt_files(prompt)
    files = {f.path: f.content for f in given if not f.path.startswith(".maestro/")}
    subject = subject_of(head)
    answer: msgspec.Struct
    match role:
        case "planner":
            answer = _plan(subject, head)
        case "scaffolder":
            answer = _scaffold(subject, files)
        case "implementer":
            answer = _implement(subject, files)
        case "doc-writer":
            answer = _document(subject, files)
        case "reviewer":
            answer = _review(head, files)
        case "tester":
            return _text(role, prompt)
    return msgspec.json.encode(answer).decode()


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
        """The role-shaped answer for `prompt` (in a repair round, for the first prompt of `history`), as
        `model` (None: the first served model): with a `schema`, the JSON of the role's type; `system` is
        not read.

        Raises UnservedModel when `model` is not served."""
        if not self.serves(model):
            raise UnservedModel(f"model {model!r} is not served here; served: {', '.join(self.models)}")
        asked = history[0].text if history else prompt
        text = _structured(role, asked) if schema is not None else _text(role, asked)
        used = model or self.models[0]
        return Completion(
            text=text,
            usage=Usage(model=used, input_tokens=count_tokens(prompt), output_tokens=count_tokens(text)),
        )
