"""The words of a parsed command: arguments after quote removal, redirections, and one invocation."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    """One argument after quote removal; `dynamic` when part of it is only known at run time."""

    text: str
    dynamic: bool = False
    """It holds a parameter or substitution whose value is unknown (an unset variable, `$(cmd)`)."""
    guarded: bool = False
    """Every unknown parameter in it is `${VAR:?}`-guarded, so it cannot silently expand to nothing."""
    substs: tuple[tuple[str, ...], ...] = ()
    """Argv of each command whose output is substituted into the word (`$(...)`, `<(...)`)."""


@dataclass(frozen=True)
class Redirect:
    """A redirection: its operator, its target word, and the text a heredoc or here-string feeds in."""

    op: str
    target: Word | None = None
    body: str | None = None


@dataclass(frozen=True)
class Invocation:
    """One simple command as it will run."""

    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...] = ()
    sudo: bool = False
    """It runs with raised privileges (sudo, doas, su, pkexec)."""
    xargs: bool = False
    """It runs under xargs, so more arguments arrive from its stdin."""
    pipeline: tuple[tuple[str, ...], ...] = ()
    """Argv of every stage of the pipeline it belongs to (one stage when it is not piped)."""
    stage: int = 0
    cwd: str | None = None
    """Directory it runs in when an earlier `cd` left the workspace (None: the workspace)."""
    span: tuple[int, int] = (0, 0)
    """Where it is in the judged text (character offsets)."""

    @property
    def argv(self) -> tuple[str, ...]:
        """The words' texts."""
        return tuple(w.text for w in self.words)

    @property
    def program(self) -> str:
        """The command's name without its directory ('' when there is none)."""
        return program_name(self.words[0].text) if self.words else ""

    @property
    def upstream(self) -> tuple[tuple[str, ...], ...]:
        """Argv of the stages piped into it."""
        return self.pipeline[: self.stage]

    @property
    def downstream(self) -> tuple[tuple[str, ...], ...]:
        """Argv of the stages it pipes into."""
        return self.pipeline[self.stage + 1 :]

    @property
    def stdin_text(self) -> str | None:
        """The text a heredoc or here-string feeds it, if any."""
        for r in self.redirects:
            if r.body is not None:
                return r.body
        return None


def program_name(word: str) -> str:
    """A command's name as the rules know it: no directory, no version suffix on interpreters."""
    name = word.rsplit("/", 1)[-1].lower().removesuffix(".exe")
    m = re.fullmatch(r"(python|pypy|perl|ruby|php|node|pip)[0-9.]*", name)
    return m.group(1) if m else name
