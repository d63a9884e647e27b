"""Schemathesis hooks of the API contract campaign (chaos/contract.py), loaded into the `schemathesis run`
process (SCHEMATHESIS_HOOKS), never into Maestro.

The campaign calls the API with one operator's token. Its stateful phase lists the tokens and may revoke
the ones it finds, that one included, after which every call would be a 401 and the campaign would go on
testing nothing; so a revocation of the campaign's own token is sent for another id, which is a 404.

The campaign runs two workers (threads). CPython 3.11 keeps the AST converter's recursion depth in state the
whole interpreter shares, so two threads in `ast.parse` at once (Hypothesis parses its sources to describe a
strategy's lambdas) may end one of them with `SystemError: AST constructor recursion depth mismatch`, which
Schemathesis reports as a Runtime Error of the operation it was generating for: a fault of the tool, not of
the API. Seen in most 500-input runs once the document had 45 operations; so `ast.parse` is taken by one
thread at a time here.
"""

from __future__ import annotations

import ast
import os
import threading
from typing import Any

import schemathesis
from schemathesis import Case, HookContext

from chaos.contract import KEEP_TOKEN_ENV

_SOMEONE_ELSE = "0" * 16

_PARSING = threading.Lock()
_parse = ast.parse


def _one_at_a_time(*args: Any, **kwargs: Any) -> Any:
    with _PARSING:
        return _parse(*args, **kwargs)


ast.parse = _one_at_a_time


@schemathesis.hook
def before_call(context: HookContext, case: Case[Any], kwargs: dict[str, object]) -> None:
    """Send a revocation of the campaign's own token for an id nobody has."""
    kept = os.environ.get(KEEP_TOKEN_ENV)
    if kept and case.operation.path == "/v1/tokens/{id}" and case.path_parameters:
        if case.path_parameters.get("id") == kept:
            case.path_parameters["id"] = _SOMEONE_ELSE
