"""textstats: small statistics of a text."""

from textstats.lines import count_lines, longest_line

__all__ = ["count_lines", "longest_line"]
__version__ = "0.1.0"
