"""What the CLI writes to a terminal: task content made inert, and a reader that went away.

Task content (prompts, outputs, errors, reasons, labels) comes from models, tools and other people. Printed
raw, an ANSI escape in it can recolour, clear or retitle the user's terminal and a bidi override can make a
line read as something else, so every control character of it is shown as its escape instead.
"""

from __future__ import annotations

import os
import sys
import unicodedata

# Characters that reorder what follows them on screen (Unicode bidi embeddings, overrides and isolates)
# and line breaks that are not "\n": shown escaped, like control characters.
_INVISIBLE = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029")

EXIT_BROKEN_PIPE = 128 + 13
"""What a shell reports for a command that SIGPIPE ended: `maestro ... | head` exits with it, silently."""


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, multiline: bool = False) -> str:
    """`text` with every C0/C1 control, DEL and bidi control escaped (`\\x1b`, `\\u202e`).

    With `multiline`, newlines and tabs stay, so an output keeps its lines; a lone carriage return is
    escaped, since it would let a line overwrite the one before it.
    """
    kept = "\n\t" if multiline else ""
    return "".join(
        _escape(c) if c not in kept and (c in _INVISIBLE or unicodedata.category(c) == "Cc") else c
        for c in text
    )


def end_broken_pipe() -> int:
    """After the reader of stdout went away: silence what is left to flush and return EXIT_BROKEN_PIPE.

    As the Python documentation recommends for SIGPIPE: point stdout at /dev/null, so the interpreter's
    final flush does not fail again (and print a second error), instead of restoring SIGPIPE's default,
    which would kill the process on any broken socket too.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
