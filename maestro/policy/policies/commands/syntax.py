"""Rewrites of shell syntax bashlex cannot parse into equivalent syntax it can.

ANSI-C strings (`$'\\x72m'`) become the single-quoted text they decode to, arithmetic `$((...))`
becomes a substitution of `:` that keeps any command substitutions inside, quoted heredoc delimiters
lose their quotes (the body is read as literal text either way), `[[ ... ]]` becomes `[ ... ]`, and the
`time` keyword is blanked.
"""

from __future__ import annotations

import re

_TIME = re.compile(r"(?:^|(?<=[;&|(\n]))(\s*)time((?:\s+-p)?\s)")
_QUOTED_HEREDOC = re.compile(r"<<(-?)[ \t]*(?:(['\"])([A-Za-z_][A-Za-z0-9_]*)\2|\\([A-Za-z_][A-Za-z0-9_]*))")
_TEST_OPEN = re.compile(r"(?:^|(?<=[\s;&|(!]))\[\[(?=\s)")
_TEST_CLOSE = re.compile(r"(?<=\s)\]\](?=$|[\s;&|)])")
_ANSI_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v"}


def preprocess(text: str) -> str:
    """Rewrite what bashlex cannot parse but a shell runs: ANSI-C strings, arithmetic, `time`."""
    if "$'" in text:
        text = _ansi_c(text)
    if "'" in text and "${" in text:
        text = _quoted_braces(text)
    if "<<" in text:
        # bashlex cannot read quoted heredoc delimiters (<<'EOF'); the body is read as literal text anyway
        text = _QUOTED_HEREDOC.sub(r"<<\1\3\4", text)
    if "$((" in text:
        text = _arithmetic(text)
    if "[[" in text:
        # `[[ expr ]]` as the `[ expr ]` command: the same words, the same length
        text = _TEST_CLOSE.sub(" ]", _TEST_OPEN.sub("[ ", text))
    if "time" in text:
        text = _TIME.sub(lambda m: m.group(1) + " " * (len(m.group(0)) - len(m.group(1))), text)
    return text


def from_fish(text: str) -> str:
    """fish text as the POSIX shell it means: `(cmd)` substitutions as `$(cmd)`, `; and`/`; or` as `&&`/`||`.

    fish has no Python parser; its differences from POSIX syntax that matter for judging what runs are
    few (fish-shell documentation, "Command substitution" and "Combiners"), so it is rewritten and read
    by bashlex. Quotes are respected; a `(` that opens a word starts a substitution.
    """
    out: list[str] = []
    quote = ""
    prev = " "
    for c in text:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "(" and (prev in " \t\n=|;&(") and prev != "$":
            out.append("$")
        out.append(c)
        prev = c
    rewritten = "".join(out)
    for fish_op, posix in ((r"; and ", " && "), (r"; or ", " || "), ("; end", "; }")):
        rewritten = rewritten.replace(fish_op, posix)
    return rewritten


def _quoted_braces(text: str) -> str:
    """`${` left open inside a single-quoted string, with its `$` as `_` (the same length).

    bashlex 0.18 loops forever on a word like `r'${x'` (a quoted `${` with no `}` after the word's
    start): measured, any such command hung the guard. Inside single quotes `$` is a literal character,
    so the rewrite changes no expansion.
    """
    out = list(text)
    i, n, quote = 0, len(text), ""
    while i < n:
        c = text[i]
        if c == "\\" and not quote:
            i += 2
            continue
        if quote == '"':
            quote = "" if c == '"' else quote
        elif c == '"':
            quote = c
        elif c == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            last = text.rfind("}", i + 1, end)  # a `${` after the segment's last `}` is left open
            j = text.find("${", max(i + 1, last + 1), end)
            while j >= 0:
                out[j] = "_"
                j = text.find("${", j + 2, end)
            i = end + 1
            continue
        i += 1
    return "".join(out)


def _ansi_c(text: str) -> str:
    """Replace every `$'...'` outside quotes with a single-quoted string of its decoded value."""
    out: list[str] = []
    i, n, quote = 0, len(text), ""
    while i < n:
        c = text[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        elif quote == '"':
            quote = "" if c == '"' else quote
        elif c in "'\"":
            quote = c
        elif c == "$" and text.startswith("$'", i):
            value, i = _decode_ansi(text, i + 2)
            out.append("'" + value.replace("'", "'\\''") + "'")
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _decode_ansi(text: str, i: int) -> tuple[str, int]:
    """Decode an ANSI-C quoted body starting at i; returns the value and the index after the quote."""
    out: list[str] = []
    n = len(text)
    while i < n and text[i] != "'":
        c = text[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = text[i + 1]
        i += 2
        if e in _ANSI_ESCAPES:
            out.append(_ANSI_ESCAPES[e])
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            m = re.match(r"[0-9A-Fa-f]+", text[i : i + width])
            if m:
                out.append(chr(min(int(m.group(0), 16), 0x10FFFF)))
                i += len(m.group(0))
            else:
                out.append("\\" + e)
        elif e in "01234567":
            m = re.match(r"[0-7]{0,2}", text[i : i + 2])
            digits = e + (m.group(0) if m else "")
            out.append(chr(int(digits, 8)))
            i += len(digits) - 1
        else:
            out.append(e)
    return "".join(out), i + 1


def _arithmetic(text: str) -> str:
    """Turn `$((expr))` into `$(: "expr")`: the same substitutions inside, a syntax bashlex can parse."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        start = text.find("$((", i)
        if start < 0:
            break
        depth, j = 2, start + 3
        while j < n and depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        if depth:
            break
        out.append(text[i:start])
        out.append('$(: "' + text[start + 3 : j - 2].replace('"', "") + '")')
        i = j
    out.append(text[i:])
    return "".join(out)
