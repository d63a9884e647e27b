"""Shell text as the invocations it runs: parsed with bashlex, wrappers unwrapped, substitutions walked.

An Invocation is one simple command after quote removal, with `sudo`, `env`, `nice`, `timeout`, `xargs`
and friends peeled off, literal variables assigned earlier in the same text expanded, `$HOME` read as `~`
and `$PWD`/`$(pwd)` as `.`. What a command substitutes, pipes or feeds in (heredocs, here-strings) is
kept so the rules can tell `curl ... | sh` from `curl -o file`. Nested shells (`bash -c`) are not
parsed here: the rules hand their strings back to the caller, which bounds the depth.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from maestro.policy.policies.commands.syntax import preprocess
from maestro.policy.policies.commands.words import Invocation, Redirect, Word
from maestro.policy.policies.commands.wrappers import unwrap

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


_PLAIN = re.compile(r"[A-Za-z0-9_./:,@%+-]+(?: +[A-Za-z0-9_./:,@%+=-]+)* *")
"""Text bash reads as one simple command of its space-separated words: nothing to quote, expand,
glob, redirect or assign (an `=` only after the first word, where it is an argument)."""
_KEYWORDS = frozenset(
    "if then elif else fi for in do done while until case esac select function time coproc".split()
)


class ShellError(Exception):
    """The text is not shell bashlex can parse (syntax error, or a construct it does not implement)."""


@dataclass(frozen=True)
class FunctionDef:
    """A shell function: its name and the invocations and background/pipe use in its body."""

    name: str
    calls: tuple[str, ...]
    forks: bool
    span: tuple[int, int]


@dataclass
class Script:
    """Everything a piece of shell text runs."""

    invocations: list[Invocation] = field(default_factory=list)
    functions: list[FunctionDef] = field(default_factory=list)


def parse(text: str, *, max_nodes: int = 5000) -> Script:
    """The invocations and functions of a piece of shell text.

    Raises ShellError when bashlex cannot parse it.
    """
    source = preprocess(text)
    if _PLAIN.fullmatch(source) and source.split(" ", 1)[0] not in _KEYWORDS:
        # Words of plain characters separated by spaces (`pytest -q`, `git push origin main`), the bulk
        # of what agents run: bash reads them as one simple command of those words, so bashlex's
        # generated parser (most of a judgement's time) is skipped. A property test holds the two equal.
        return plain_command(source, max_nodes)
    return parsed(source, max_nodes)


def plain_command(source: str, max_nodes: int = 5000) -> Script:
    """Text that `_PLAIN` matches, read as the one simple command it is."""
    walker = _Walker(max_nodes, source)
    walker.invocation([Word(w) for w in source.split()], [], [], (0, len(source.rstrip(" "))))
    return walker.script


def parsed(source: str, max_nodes: int = 5000) -> Script:
    """Preprocessed shell text parsed by bashlex and walked."""
    import bashlex  # its parser tables take 120 ms to build: paid by the processes that judge commands

    try:
        trees = bashlex.parse(source)
    except Exception as exc:  # bashlex raises ParsingError, NotImplementedError, AssertionError, ...
        raise ShellError(str(exc)[:200]) from exc
    walker = _Walker(max_nodes, source)
    for tree in trees:
        walker.node(tree)
    return walker.script


class _Walker:
    """Walks bashlex nodes in order, tracking literal variables and the directory `cd` moved to."""

    def __init__(self, max_nodes: int, source: str = "") -> None:
        self.source = source
        self.script = Script()
        self.vars: dict[str, str] = {}
        self.cwd: str | None = None
        self.budget = max_nodes

    def node(self, n: Any, pipeline: tuple[tuple[str, ...], ...] = (), stage: int = 0) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise ShellError("too many nodes")
        kind = n.kind
        if kind == "command":
            self.command(n, pipeline, stage)
        elif kind == "pipeline":
            stages = [p for p in n.parts if p.kind != "pipe"]
            argvs = tuple(self.peek_argv(p) for p in stages)
            for index, part in enumerate(stages):
                self.node(part, argvs, index)
        elif kind == "list":
            for p in n.parts:
                if p.kind != "operator":
                    self.node(p, pipeline, stage)  # `(a; b) | c`: both a and b feed c
        elif kind == "compound":
            for p in n.list:
                if p.kind not in ("reservedword", "operator", "pipe"):
                    self.node(p, pipeline, stage)
        elif kind in ("if", "for", "while", "until"):
            if kind == "for":
                self.loop_variable(n)
            for p in n.parts:
                if p.kind in ("list", "command", "pipeline", "compound"):
                    self.node(p)
                elif p.kind == "word":
                    self.substitutions(p)
        elif kind == "function":
            self.function(n)

    def loop_variable(self, n: Any) -> None:
        """`for x in a b c`: x stands for its most dangerous literal item (an absolute or climbing path)."""
        parts = n.parts
        if len(parts) < 2 or parts[1].kind != "word":
            return
        name = parts[1].word
        items: list[Word] = []
        if len(parts) > 2 and parts[2].kind == "reservedword" and parts[2].word == "in":
            for p in parts[3:]:
                if p.kind != "word":
                    break
                items.append(self.word(p))
        if not items or any(w.dynamic for w in items):
            self.vars.pop(name, None)
            return
        risky = [w.text for w in items if w.text.startswith(("/", "~", "..", ".*"))]
        self.vars[name] = risky[0] if risky else items[0].text

    def argvs_of(self, n: Any) -> tuple[tuple[str, ...], ...]:
        """Argv of every simple command in a node (all stages of a substituted pipeline), unwalked."""
        found: list[tuple[str, ...]] = []
        stack = [n]
        while stack and len(found) < 64:
            cur = stack.pop()
            if cur.kind == "command":
                found.append(self.peek_argv(cur))
            else:
                stack.extend(reversed(getattr(cur, "parts", None) or getattr(cur, "list", None) or ()))
        return tuple(found)

    def function(self, n: Any) -> None:
        name = n.parts[0].word if n.parts and n.parts[0].kind == "word" else ""
        before = len(self.script.invocations)
        body = [p for p in n.parts[1:] if p.kind not in ("reservedword",)]
        for p in body:
            self.node(p)
        inner = self.script.invocations[before:]
        forks = any(inv.pipeline and len(inv.pipeline) > 1 for inv in inner) or _has_background(n)
        self.script.functions.append(FunctionDef(name, tuple(i.program for i in inner), forks, n.pos))

    def peek_argv(self, n: Any) -> tuple[str, ...]:
        """A pipeline stage's argv (unwrapped), without walking it."""
        if n.kind != "command":
            return ()
        words = tuple(self.word(p) for p in n.parts if p.kind == "word")
        return tuple(w.text for w in unwrap(words)[0])

    def substitutions(self, n: Any) -> tuple[tuple[str, ...], ...]:
        """Walk the commands substituted into a word; returns their argv."""
        found: list[tuple[str, ...]] = []
        for p in getattr(n, "parts", None) or ():
            if p.kind in ("commandsubstitution", "processsubstitution"):
                found.extend(self.argvs_of(p.command))
                self.node(p.command)
            elif p.kind == "word":
                found.extend(self.substitutions(p))
        return tuple(found)

    def word(self, n: Any) -> Word:
        """A word node as a Word: known variables expanded, `$HOME` as `~`, `$PWD`/`$(pwd)` as `.`."""
        text: str = n.word
        if not getattr(n, "parts", None) and self.source:
            raw = self.source[n.pos[0] : n.pos[1]]
            if "'" in raw or '"' in raw:
                text = unquote(raw)  # bashlex keeps inner quotes of `'a'"'"'b'` concatenations
        dynamic = guarded = False
        substs: list[tuple[str, ...]] = []
        unknown_guards: list[bool] = []
        for p in getattr(n, "parts", None) or ():
            if p.kind in ("commandsubstitution", "processsubstitution"):
                argvs = self.argvs_of(p.command)
                substs.extend(argvs)
                if argvs == (("pwd",),):
                    text = text.replace("$(pwd)", ".").replace("`pwd`", ".")
                else:
                    dynamic = True
            elif p.kind == "parameter":
                value = getattr(p, "value", "") or ""
                m = _IDENT.match(value)
                name = m.group(0) if m else value
                if name not in self.vars and name not in ("HOME", "PWD"):
                    dynamic = True
                    unknown_guards.append(":?" in value or value[len(name) : len(name) + 1] == "?")
        if "$" in text:
            text = _PARAM.sub(self.expand, text)
        guarded = bool(unknown_guards) and all(unknown_guards)
        return Word(text, dynamic, guarded, tuple(substs))

    def expand(self, m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name == "HOME":
            return "~"
        if name == "PWD":
            return "."
        return self.vars.get(name, m.group(0))

    def command(self, n: Any, pipeline: tuple[tuple[str, ...], ...], stage: int) -> None:
        words: list[Word] = []
        redirects: list[Redirect] = []
        assignments: list[tuple[str, Word]] = []
        for p in n.parts:
            if p.kind == "word":
                self.substitutions(p)
                words.append(self.word(p))
            elif p.kind == "assignment":
                self.substitutions(p)
                name, _, _ = p.word.partition("=")
                assignments.append((name, self.word(p)))
            elif p.kind == "redirect":
                redirects.append(self.redirect(p))
        self.invocation(words, redirects, assignments, n.pos, pipeline, stage)

    def invocation(
        self,
        words: list[Word],
        redirects: list[Redirect],
        assignments: list[tuple[str, Word]],
        span: tuple[int, int],
        pipeline: tuple[tuple[str, ...], ...] = (),
        stage: int = 0,
    ) -> None:
        """One simple command's words, redirections and leading assignments, as the Invocation it runs."""
        if not words and redirects:
            words = [Word(":")]  # `> file` alone truncates it, as `: > file` does
        if not words:
            for name, w in assignments:
                self.assign(name, w.text.partition("=")[2], w.dynamic)
            return
        argv, sudo, xargs = unwrap(tuple(words))
        if argv and argv[0].text in ("export", "declare", "local", "readonly", "typeset"):
            for w in argv[1:]:
                name, eq, value = w.text.partition("=")
                if eq and _IDENT.fullmatch(name):
                    self.assign(name, value, w.dynamic)
        if not pipeline:
            pipeline = (tuple(w.text for w in argv),)
        inv = Invocation(argv, tuple(redirects), sudo, xargs, pipeline, stage, self.cwd, span)
        self.script.invocations.append(inv)
        if argv and argv[0].text in ("cd", "pushd"):
            self.change_dir(argv[1:])

    def assign(self, name: str, value: str, dynamic: bool) -> None:
        if dynamic:
            self.vars.pop(name, None)
        else:
            self.vars[name] = value

    def change_dir(self, args: tuple[Word, ...]) -> None:
        target = next((w for w in args if not w.text.startswith("-") or w.text == "-"), Word("~"))
        if target.dynamic or target.text == "-":
            self.cwd = "$"
        elif target.text.startswith(("/", "~")):
            self.cwd = posixpath.normpath(target.text)
        elif self.cwd is not None:
            self.cwd = posixpath.normpath(posixpath.join(self.cwd, target.text))
        elif posixpath.normpath(target.text).startswith(".."):
            self.cwd = posixpath.normpath(target.text)

    def redirect(self, n: Any) -> Redirect:
        op: str = n.type
        heredoc = getattr(n, "heredoc", None)
        if heredoc is not None:
            body: str = heredoc.value
            body = body.rsplit("\n", 1)[0] if "\n" in body else ""
            return Redirect(op, None, body)
        output = n.output
        if isinstance(output, (int, str)) or output is None:
            return Redirect(op)  # a descriptor: `2>&1`, `>&-`
        self.substitutions(output)
        target = self.word(output)
        if op == "<<<":
            return Redirect(op, target, target.text)
        return Redirect(op, target)


def unquote(raw: str) -> str:
    """POSIX quote removal of a word without expansions: '...' literal, "..." with its four escapes."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "'":
            j = raw.find("'", i + 1)
            j = n if j < 0 else j
            out.append(raw[i + 1 : j])
            i = j + 1
        elif c == '"':
            i += 1
            while i < n and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < n and raw[i + 1] in '$`"\\\n':
                    out.append(raw[i + 1])
                    i += 2
                else:
                    out.append(raw[i])
                    i += 1
            i += 1
        elif c == "\\" and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _has_background(n: Any) -> bool:
    """Whether a node backgrounds anything (`&`)."""
    stack = [n]
    seen = 0
    while stack and seen < 2000:
        seen += 1
        cur = stack.pop()
        if cur.kind == "operator" and getattr(cur, "op", "") == "&":
            return True
        stack.extend(getattr(cur, "parts", None) or ())
        stack.extend(getattr(cur, "list", None) or ())
    return False


# Wrappers that run the rest of their argv as a command: option -> whether it takes a value.
