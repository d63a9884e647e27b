"""Shell commands inside the files that carry them, for judging a change's added lines (check-pr).

A carrier is a file whose lines, or parts of them, a shell will run: shell, PowerShell and batch
scripts; Makefile recipes (tab-indented, `@`/`-`/`+` prefixes, `$$` for `$`); Dockerfile and
Containerfile `RUN` instructions (shell and JSON exec form); CI configuration (GitHub Actions `run:`,
GitLab CI and Travis `script:`/`before_script:`/`after_script:`, Azure Pipelines `script:`/`bash:`/
`pwsh:`, CircleCI `command:`); and package.json `scripts`. Each command comes out with the 1-based line
and 0-based column where it starts, so what the family finds can be placed on the file's line.

Only commands that start on an added line are taken; continuation lines (`\\`, YAML block scalars)
follow their first line. Shell-script lines are judged one logical line at a time, with compound
keywords (`if ...; then`, `do`, `fi`, `done`, `case` patterns) peeled off, because a diff adds lines,
not whole compound commands.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Collection
from dataclasses import dataclass

import re2

from maestro.policy.policies.commands.shell import ShellError, parse


@dataclass(frozen=True)
class Carried:
    """One command a file carries: where it starts and its text."""

    line: int
    column: int
    text: str


_SCRIPT_EXT = (".sh", ".bash", ".zsh", ".ksh", ".dash", ".fish", ".ps1", ".psm1", ".bat", ".cmd")
_SHEBANG = re2.compile(r"^#!\s*\S*(?:/|env\s+)(?:ba|z|k|da|fi|c|tc)?sh\b|^#!\s*\S*pwsh\b")
_CI = re2.compile(
    r"(?:^|/)(?:\.github/workflows/[^/]+\.ya?ml|\.gitlab-ci\.ya?ml|\.gitlab/ci/[^/]+\.ya?ml|"
    r"\.circleci/config\.ya?ml|azure-pipelines\.ya?ml|\.travis\.ya?ml|bitbucket-pipelines\.ya?ml|"
    r"\.drone\.ya?ml|\.woodpecker\.ya?ml|\.buildkite/pipeline\.ya?ml)$"
)
_CI_KEYS = re2.compile(
    r"^(\s*)(?:-\s+)?(run|script|before_script|after_script|bash|pwsh|powershell|command|install|"
    r"before_install|after_success|deploy)\s*:\s*(.*)$"
)
_KEYWORD_HEAD = re2.compile(r"^\s*(?:(?:then|do|else|elif|if|while|until|!|\{|\}|\(|\))\s+)+")
_KEYWORD_TAIL = re2.compile(r"\s*;?\s*(?:then|do|\{)\s*$")
_ONLY_KEYWORD = re2.compile(r"^\s*(?:fi|done|esac|;;|\{|\}|\(|\)|else|then|do|end|begin)?\s*;?\s*$")
_CASE_ARM = re2.compile(r"^\s*[^\s()]+\)\s*")
_FUNCTION = re2.compile(r"^\s*(?:function\s+)?[A-Za-z_][\w-]*\s*\(\)\s*\{?\s*$|^\s*function\s+\w+\s*\{?\s*$")
_MAX_COMMANDS = 2000


def kind(path: str, content: str) -> str | None:
    """The carrier a file is (`script`, `makefile`, `dockerfile`, `ci`, `package.json`), or None."""
    name = posixpath.basename(path)
    low = name.lower()
    if _CI.search(path):
        return "ci"
    if low in ("makefile", "gnumakefile") or low.endswith(".mk"):
        return "makefile"
    if low in ("dockerfile", "containerfile") or low.startswith(("dockerfile.", "containerfile.")):
        return "dockerfile"
    if low.endswith(".dockerfile"):
        return "dockerfile"
    if name == "package.json":
        return "package.json"
    if low.endswith(_SCRIPT_EXT) or _SHEBANG.match(content[:200]):
        return "script"
    return None


def carried(path: str, content: str, added: Collection[int]) -> list[Carried]:
    """The commands `path` carries that start on an added line."""
    how = kind(path, content)
    if how is None or not added:
        return []
    lines = content.splitlines()
    if how == "script":
        found = _script(lines, added)
    elif how == "makefile":
        found = _makefile(lines, added)
    elif how == "dockerfile":
        found = _dockerfile(lines, added)
    elif how == "ci":
        found = _ci(lines, added)
    else:
        found = _package_json(lines, added)
    return [c for c in found if c.text.strip()][:_MAX_COMMANDS]


def _logical(lines: list[str], start: int) -> tuple[str, int]:
    """The line at `start` (0-based) joined with its backslash continuations; the index after it."""
    parts = [lines[start]]
    i = start
    while parts[-1].endswith("\\") and i + 1 < len(lines):
        parts[-1] = parts[-1][:-1]
        i += 1
        parts.append(lines[i])
    return "\n".join(parts) if len(parts) == 1 else " ".join(p.strip() for p in parts), i + 1


def _heredoc(lines: list[str], text: str, after: int) -> tuple[str, int]:
    """A heredoc started on the line, with its body up to the delimiter."""
    m = re2.search(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?", text)
    if not m:
        return text, after
    body: list[str] = []
    i = after
    while i < len(lines) and lines[i].strip() != m.group(1) and len(body) < 500:
        body.append(lines[i])
        i += 1
    return "\n".join([text, *body, m.group(1)]), i + 1


def _script(lines: list[str], added: Collection[int]) -> list[Carried]:
    out: list[Carried] = []
    i = 0
    while i < len(lines):
        text, after = _logical(lines, i)
        if i + 1 in added and not text.lstrip().startswith("#"):
            if "<<" in text:
                text, after = _heredoc(lines, text, after)
            body = (text if _parses(text) else _peel(text)).strip()
            if body:
                out.append(Carried(i + 1, max(text.find(body[:8]), 0), body))
        elif "<<" in text:
            _, after = _heredoc(lines, text, after)
        i = after
    return out


def _parses(text: str) -> bool:
    try:
        parse(text)
    except ShellError:
        return False
    return True


def _peel(text: str) -> str:
    """A script line without the compound-command keywords around it (`if X; then` -> `X`)."""
    if (
        _ONLY_KEYWORD.match(text)
        or _FUNCTION.match(text)
        or re2.match(r"^\s*case\s.*\sin\s*$", text)
        or re2.match(r"^\s*(?:for|select)\s+\w+(?:\s+in\s[^;]*)?\s*;?\s*(?:do)?\s*$", text)
    ):
        return ""
    text = _KEYWORD_TAIL.sub("", _KEYWORD_HEAD.sub("", text, count=1), count=1)
    if _CASE_ARM.match(text) and not re2.match(r"^\s*\w+=", text):
        text = _CASE_ARM.sub("", text, count=1)
    text = re2.sub(r"\s*;;\s*$", "", text)
    text = re2.sub(r"^\s*(?:done|fi|esac)\s*[;|&]*\s*", "", text)
    return str(re2.sub(r"\s*;?\s*(?:fi|done)\s*$", "", text))


_MAKE_ASSIGN = re2.compile(r"^(?:override\s+|export\s+)?([A-Za-z_][\w.-]*)\s*(?::{1,3}=|\?=|=)\s*(.*)$")
_MAKE_REF = re2.compile(r"\$[({]([A-Za-z_][\w.-]*)[)}]")


def _make_expand(text: str, variables: dict[str, str], depth: int = 0) -> str:
    """Make's references in a recipe: variables the Makefile sets literally by their value, other
    variables as unknown shell parameters, and function calls (`$(if ...)`, `$(shell ...)`) as unknown."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith(("$(", "${"), i) and i + 2 < len(text):
            close = ")" if text[i + 1] == "(" else "}"
            depth_now, j = 0, i + 1
            while j < len(text):
                depth_now += {"(": 1, "{": 1, ")": -1, "}": -1}.get(text[j], 0)
                if depth_now == 0 and text[j] == close:
                    break
                j += 1
            inner = text[i + 2 : j]
            name = inner if _MAKE_REF.fullmatch(text[i : j + 1]) else ""
            value = variables.get(name) if name else None
            if value is not None and depth < 3:
                out.append(_make_expand(value, variables, depth + 1))
            else:
                out.append("${" + (name or "MAKE_FUNCTION") + "}")
            i = j + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _makefile(lines: list[str], added: Collection[int]) -> list[Carried]:
    variables: dict[str, str] = {}
    for line in lines:
        m = _MAKE_ASSIGN.match(line) if not line.startswith("\t") else None
        if m and m.group(1) not in variables:
            variables[m.group(1)] = m.group(2).split("#", 1)[0].strip()
    out: list[Carried] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("\t"):
            i += 1
            continue
        text, after = _logical(lines, i)
        if i + 1 in added:
            body = text.lstrip("\t")
            stripped = body.lstrip("@-+ ")
            column = len(text) - len(stripped)
            recipe = _make_expand(stripped.replace("$$", "\0"), variables).replace("\0", "$")
            out.append(Carried(i + 1, column, recipe))
        i = after
    return out


def _dockerfile(lines: list[str], added: Collection[int]) -> list[Carried]:
    out: list[Carried] = []
    i = 0
    while i < len(lines):
        text, after = _logical(lines, i)
        m = re2.match(r"(?i)^(\s*RUN\s+(?:--\S+\s+)*)(.*)$", text) if i + 1 in added else None
        if m:
            body = m.group(2)
            if body.startswith("["):
                try:
                    argv = json.loads(body)
                    body = shlex.join(str(a) for a in argv) if isinstance(argv, list) else body
                except ValueError:
                    pass
            elif "<<" in body:
                body, after = _heredoc(lines, body, after)
            out.append(Carried(i + 1, len(m.group(1)), body))
        i = after
    return out


def _ci(lines: list[str], added: Collection[int]) -> list[Carried]:
    out: list[Carried] = []
    i = 0
    while i < len(lines):
        m = _CI_KEYS.match(lines[i])
        if not m:
            i += 1
            continue
        indent, value = len(m.group(1)), m.group(3).strip()
        key_at = lines[i].find(m.group(2))
        if value and value[0] in "|>":
            block, i = _block(lines, i + 1, indent)
            if block:
                first = block[0][0]
                inner = {n - first + 1 for n, _ in block if n in added}
                out += [
                    Carried(c.line + first - 1, c.column, c.text)
                    for c in _script([b for _, b in block], inner)
                ]
            continue
        if value and value != "[]":
            if i + 1 in added:
                text = _unquote(value)
                out.append(Carried(i + 1, lines[i].find(value, key_at), text))
            i += 1
            continue
        items, i = _list_items(lines, i + 1, indent)
        for number, column, text in items:
            if number in added:
                out.append(Carried(number, column, text))
    return out


def _block(lines: list[str], start: int, indent: int) -> tuple[list[tuple[int, str]], int]:
    """The lines of a YAML block scalar more indented than its key: (1-based number, dedented text)."""
    body: list[tuple[int, str]] = []
    i = start
    while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
        body.append((i + 1, lines[i]))
        i += 1
    while body and not body[-1][1].strip():
        body.pop()
    if not body:
        return [], i
    cut = min(len(t) - len(t.lstrip()) for _, t in body if t.strip())
    return [(n, t[cut:]) for n, t in body], i


def _list_items(lines: list[str], start: int, indent: int) -> tuple[list[tuple[int, int, str]], int]:
    """`- cmd` items (and `- |` blocks) under a key: (1-based line, column, text)."""
    out: list[tuple[int, int, str]] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        own = len(line) - len(line.lstrip())
        m = re2.match(r"^(\s*-\s+)(.*)$", line)
        if not m or own < indent:
            break
        value = m.group(2).strip()
        if value[:1] in ("|", ">"):
            block, i = _block(lines, i + 1, own)
            out += [(n, 0, t) for n, t in block if t.strip() and not t.lstrip().startswith("#")]
            continue
        out.append((i + 1, len(m.group(1)), _unquote(value)))
        i += 1
    return out, i


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("''", "'") if value[0] == "'" else inner.replace('\\"', '"')
    return value


def _package_json(lines: list[str], added: Collection[int]) -> list[Carried]:
    out: list[Carried] = []
    inside = False
    for number, line in enumerate(lines, start=1):
        if re2.search(r'"scripts"\s*:\s*\{', line):
            inside = "}" not in line
            continue
        if inside and re2.match(r"^\s*\}", line):
            inside = False
            continue
        m = re2.match(r'^(\s*"[^"]+"\s*:\s*")((?:[^"\\]|\\.)*)"', line) if inside else None
        if m and number in added:
            try:
                text = json.loads('"' + m.group(2) + '"')
            except ValueError:
                text = m.group(2)
            out.append(Carried(number, len(m.group(1)), str(text)))
    return out
