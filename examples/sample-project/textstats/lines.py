"""Statistics of a text's lines."""

from __future__ import annotations


def count_lines(text: str) -> int:
    """How many lines `text` has (a last line without a line break counts)."""
    return len(text.splitlines())


def longest_line(text: str) -> str:
    """The longest line of `text` (the first of the longest ones), without its line break; "" for none."""
    return max(text.splitlines(), key=len, default="")
