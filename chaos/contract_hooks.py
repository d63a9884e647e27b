"""Schemathesis hooks of the API contract campaign (chaos/contract.py), loaded into the `schemathesis run`
process (SCHEMATHESIS_HOOKS), never into Maestro.

The campaign calls the API with one operator's token. Its stateful phase lists the tokens and may revoke
the ones it finds, that one included, after which every call would be a 401 and the campaign would go on
testing nothing; so a revocation of the campaign's own token is sent for another id, which is a 404.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from schemathesis import Case, HookContext

from chaos.contract import KEEP_TOKEN_ENV

_SOMEONE_ELSE = "0" * 16


@schemathesis.hook
def before_call(context: HookContext, case: Case[Any], kwargs: dict[str, object]) -> None:
    """Send a revocation of the campaign's own token for an id nobody has."""
    kept = os.environ.get(KEEP_TOKEN_ENV)
    if kept and case.operation.path == "/v1/tokens/{id}" and case.path_parameters:
        if case.path_parameters.get("id") == kept:
            case.path_parameters["id"] = _SOMEONE_ELSE
