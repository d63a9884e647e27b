"""The metric names a PromQL expression reads: enough of PromQL's lexical rules to find them, no more.

An expression's metric names are its identifiers that are not a function call (followed by `(`), not an
aggregation or keyword, and not inside a label matcher `{...}`, a grouping `by (...)`, a range `[...]` or a
string. Numbers and durations never start an identifier here, since an identifier must not follow a digit.
"""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    {
        # binary operators and modifiers
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
        "bool", "atan2",
        # aggregations (they may be followed by `by (...)` before their own parenthesis)
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
        "quantile", "limitk", "limit_ratio",
        # literals
        "inf", "nan",
    }
)  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'" + r"|`[^`]*`")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_IDENTIFIER = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:]|\s*\()")


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` reads."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(r"\1", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in KEYWORDS}


def family_of(name: str) -> str:
    """The name a histogram's series belong to (`x_bucket` -> `x`); other names unchanged."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
