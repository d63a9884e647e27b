"""PowerShell and cmd.exe text as the commands it runs: a small tokenizer for each, no Python parser exists.

No maintained Python package parses PowerShell (its own parser is .NET's System.Management.Automation)
or cmd.exe, so this module tokenizes both by the languages' documented rules, in one linear pass:

- PowerShell (about_Parsing, about_Quoting_Rules, about_Comments): statements end at `;`, a newline,
  `&&` or `||`; `|` separates pipeline stages; words are split on blanks; '...' is literal ('' is a
  quote), "..." expands (a backtick escapes); `#` starts a comment and `<# #>` a block comment; a
  backtick before a newline continues the line. `(...)`, `$(...)`, `@(...)` and `{...}` are kept as one
  word and their text is tokenized in turn as a nested statement list (subexpressions, script blocks).
- cmd.exe (cmd /?, the `^` escape and `"` quoting of the command processor): statements end at `&`,
  `&&`, `||`, a newline or a parenthesis; `|` separates stages; `^` escapes the next character; "..."
  quotes; `rem` and `::` lines are comments.

Each command comes out as a WinCommand: its words (quotes removed), the texts of its subexpressions,
the argv of every stage of its pipeline and its offset, which windows.py judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import re2

Dialect = Literal["pwsh", "cmd"]
_MAX_COMMANDS = 256

_PWSH_VERBS = (
    "Add|Clear|Compress|Connect|Convert|ConvertFrom|ConvertTo|Copy|Disable|Disconnect|Dismount|Enable|"
    "Enter|Expand|Export|Find|Format|Get|Grant|Import|Initialize|Install|Invoke|Join|Measure|Mount|Move|"
    "New|Out|Publish|Read|Register|Remove|Rename|Reset|Resize|Restart|Resume|Revoke|Save|Select|Send|"
    "Set|Split|Start|Stop|Suspend|Test|Unblock|Uninstall|Unregister|Update|Wait|Write"
)
_PWSH = re2.compile(
    r"(?i)(?:^|[;|&({}\n\"']\s*)(?:(?:" + _PWSH_VERBS + r")-[A-Za-z]+\b|iex\b|iwr\b|irm\b)|\$env:"
)
_CMD = re2.compile(
    r"(?i)(?:^|[&|(\n\"]\s*)(?:cmd|del|erase|rd|rmdir|format|vssadmin|wbadmin|bcdedit|reg|schtasks|net|netsh|"
    r"certutil|bitsadmin|diskpart|wmic|cipher|takeown|icacls|wevtutil|shutdown|copy|xcopy|robocopy|attrib)"
    r"(?:\.exe)?(?:\s[^\n]*)?\s/[a-z]"
)

_DRIVE = re2.compile(r"(?:^|[\s'\"=])[A-Za-z]:\\")


def dialect(text: str) -> Dialect | None:
    """The Windows shell a piece of top-level text is written for, when it has the marks of one."""
    head = text[:4096]
    if _PWSH.search(head):
        return "pwsh"
    if _CMD.search(head):
        return "cmd"
    if _DRIVE.search(head):
        return "pwsh"  # `rm -r -fo C:\Users\x`: a drive path outside any cmd syntax is PowerShell's
    return None


@dataclass(frozen=True)
class WinCommand:
    """One command of PowerShell or cmd text."""

    words: tuple[str, ...]
    subexpressions: tuple[str, ...] = ()
    """Text of `(...)`, `$(...)`, `@(...)` and `{...}` in its words (PowerShell), to judge in turn."""
    pipeline: tuple[tuple[str, ...], ...] = ()
    stage: int = 0
    offset: int = 0

    @property
    def name(self) -> str:
        """The command's name, lower case, without directory or `.exe`."""
        if not self.words:
            return ""
        name = self.words[0].replace("\\", "/").rsplit("/", 1)[-1].lower()
        return name.removesuffix(".exe")

    @property
    def upstream(self) -> tuple[tuple[str, ...], ...]:
        return self.pipeline[: self.stage]


def tokenize(text: str, how: Dialect) -> list[WinCommand]:
    """The commands of PowerShell or cmd text, in order (at most a bounded number)."""
    statements = _split(text, how)
    out: list[WinCommand] = []
    for stages in statements:
        argvs = tuple(tuple(w for w, _ in words) for words, _, _ in stages)
        for index, (words, subs, offset) in enumerate(stages):
            if words and len(out) < _MAX_COMMANDS:
                out.append(WinCommand(tuple(w for w, _ in words), tuple(subs), argvs, index, offset))
    return out


_Stage = tuple[list[tuple[str, int]], list[str], int]


def _split(text: str, how: Dialect) -> list[list[_Stage]]:
    """Statements, each a list of pipeline stages: (words with offsets, subexpression texts, offset)."""
    pwsh = how == "pwsh"
    escape = "`" if pwsh else "^"
    statements: list[list[_Stage]] = []
    stages: list[_Stage] = []
    words: list[tuple[str, int]] = []
    subs: list[str] = []
    word: list[str] = []
    word_at = -1
    stage_at = 0
    i, n = 0, len(text)

    def end_word() -> None:
        nonlocal word, word_at
        if word_at >= 0:
            words.append(("".join(word), word_at))
        word, word_at = [], -1

    def end_stage() -> None:
        nonlocal words, subs
        end_word()
        if words:
            stages.append((words, subs, stage_at))
        words, subs = [], []

    def end_statement() -> None:
        nonlocal stages
        end_stage()
        if stages:
            statements.append(stages)
        stages = []

    while i < n:
        c = text[i]
        if c == escape and i + 1 < n:
            if text[i + 1] == "\n":
                i += 2  # line continuation
                continue
            word_at = i if word_at < 0 else word_at
            word.append(text[i + 1])
            i += 2
            continue
        if c in " \t\r":
            end_word()
            i += 1
            continue
        if c == "\n" or (c == ";" and pwsh):
            end_statement()
            i += 1
            stage_at = i
            continue
        if c in "&|":
            double = text.startswith(c * 2, i)
            if c == "|" and not double:
                end_stage()
            elif c == "&" and not double and pwsh:
                end_word()  # the call operator: `& cmd args`
                i += 1
                continue
            else:
                end_statement()
            i += 2 if double else 1
            stage_at = i
            continue
        if pwsh and c == "#" and word_at < 0:
            i = _skip_to(text, "\n", i)
            continue
        if pwsh and text.startswith("<#", i):
            end = text.find("#>", i + 2)
            i = n if end < 0 else end + 2
            continue
        if not pwsh and word_at < 0 and not words and (text.startswith("::", i) or _rem(text, i)):
            i = _skip_to(text, "\n", i)
            continue
        if c in "'\"":
            close = _close_quote(text, i, pwsh)
            word_at = i if word_at < 0 else word_at
            body = text[i + 1 : close]
            if pwsh and c == "'":
                body = body.replace("''", "'")
            elif pwsh:
                body = body.replace("`", "")
                subs.extend(_subexpressions(body))
            word.append(body)
            i = close + 1
            continue
        if c in "({" or (pwsh and c in "$@" and text.startswith("(", i + 1)):
            if not pwsh:
                end_statement()  # cmd: a parenthesis groups commands
                i += 1
                stage_at = i
                continue
            start = i + 1 if c in "({" else i + 2
            close = _close_group(text, start - 1)
            subs.append(text[start:close])
            word_at = i if word_at < 0 else word_at
            word.append(text[i : close + 1])
            i = close + 1
            continue
        if not pwsh and c == ")":
            end_statement()
            i += 1
            stage_at = i
            continue
        word_at = i if word_at < 0 else word_at
        word.append(c)
        i += 1
    end_statement()
    return statements


def _rem(text: str, i: int) -> bool:
    """Whether a cmd `rem` comment starts at i."""
    return text[i : i + 3].lower() == "rem" and text[i + 3 : i + 4] in (" ", "\t", "\n", "")


def _skip_to(text: str, char: str, i: int) -> int:
    end = text.find(char, i)
    return len(text) if end < 0 else end


def _close_quote(text: str, i: int, pwsh: bool) -> int:
    """Index of the quote closing the one at i (the text's end when it is unterminated)."""
    q = text[i]
    j = i + 1
    while j < len(text):
        if pwsh and q == '"' and text[j] == "`":
            j += 2
            continue
        if text[j] == q:
            if pwsh and text.startswith(q * 2, j):
                j += 2
                continue
            return j
        j += 1
    return len(text)


def _close_group(text: str, i: int) -> int:
    """Index of the bracket closing the one at i, quotes respected (the text's end when unclosed)."""
    depth = 0
    j = i
    while j < len(text):
        c = text[j]
        if c in "'\"":
            j = _close_quote(text, j, True) + 1
            continue
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return len(text)


def _subexpressions(body: str) -> list[str]:
    """`$(...)` inside an expandable string."""
    out: list[str] = []
    i = body.find("$(")
    while i >= 0 and len(out) < 16:
        close = _close_group(body, i + 1)
        out.append(body[i + 2 : close])
        i = body.find("$(", close)
    return out
