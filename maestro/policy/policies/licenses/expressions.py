"""The shape of an SPDX license expression: where one ends in a tag's text, and whether it is well formed.

The grammar is SPDX's (annex D of the specification): license ids joined by AND and OR, an exception after
WITH, parentheses. Tokens are read with one RE2 pattern, so no expression costs more than its length.
"""

from __future__ import annotations

import re2

_TOKEN = re2.compile(r"\(|\)|[A-Za-z0-9][A-Za-z0-9+:_-]*(?:\.[A-Za-z0-9+:_-]+)*|\S")
_OPERATORS = ("AND", "OR", "WITH")


def expression_prefix(tagged: str) -> str:
    """The SPDX expression at the start of a tag's value, without the prose that may follow it.

    "GPL-3.0-or-later -- see COPYING" is "GPL-3.0-or-later"; "(MIT OR GPL-2.0-only) - dual" keeps its
    parentheses. A value that ends inside the expression (a dangling operator, an open parenthesis) is
    returned whole, so it is judged as the malformed expression it is.
    """
    expect_operand = True
    depth = 0
    complete = 0
    for match in _TOKEN.finditer(tagged):
        token = match.group()
        if expect_operand:
            if token == "(":
                depth += 1
            elif token[0].isalnum() and token.upper() not in _OPERATORS:
                expect_operand = False
                complete = match.end() if depth == 0 else complete
            else:
                return tagged[:complete] if complete else tagged
        elif token == ")" and depth > 0:
            depth -= 1
            complete = match.end() if depth == 0 else complete
        elif token.upper() in _OPERATORS:
            expect_operand = True
        else:
            return tagged[:complete] if complete else tagged
    return tagged if expect_operand or depth else tagged[:complete]


def well_formed(expression: str) -> bool:
    """Whether an expression follows the SPDX grammar's shape: operands and operators alternate, an
    exception follows WITH, parentheses balance. The parser is only handed what is (it fails on "()")."""
    expect_operand = True
    after_with = False
    depth = 0
    for match in _TOKEN.finditer(expression):
        token = match.group()
        if expect_operand:
            if token == "(" and not after_with:
                depth += 1
            elif token[0].isalnum() and token.upper() not in _OPERATORS:
                expect_operand = after_with = False
            else:
                return False
        elif token == ")" and depth > 0:
            depth -= 1
        elif token.upper() in _OPERATORS:
            expect_operand = True
            after_with = token.upper() == "WITH"
        else:
            return False
    return not expect_operand and depth == 0
