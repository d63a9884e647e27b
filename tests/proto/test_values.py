"""Value rules of the wire types: what a field can hold is decided by its type, at every edge alike."""

from __future__ import annotations

import msgspec
import pytest

from proto.v1 import TaskRequest
from proto.v1.budget import Reserve
from proto.v1.ids import MAX_MICRO_USD


@pytest.mark.parametrize(
    ("field", "value"),
    [("tenant", "acme\n"), ("id", "t1\n"), ("model", "gpt-4o\n"), ("parent", "t0\n"), ("model", "m" * 129)],
)
def test_a_name_with_a_trailing_newline_or_too_long_is_refused(field: str, value: str) -> None:
    # Python's `$` matches before a final newline: a pattern that ends with it alone lets "acme\n" through.
    body = {"tenant": "acme", "role": "planner", "prompt": "p", field: value}
    with pytest.raises(msgspec.ValidationError, match=f"`\\$.{field}`"):
        msgspec.convert(body, TaskRequest)


def test_money_past_its_bound_is_refused() -> None:
    body = {"tenant": "acme", "task_id": "t1", "estimate_micro_usd": MAX_MICRO_USD + 1}
    with pytest.raises(msgspec.ValidationError, match="estimate_micro_usd"):
        msgspec.convert(body, Reserve)
    body = {"tenant": "acme", "role": "planner", "prompt": "p", "max_cost_micro_usd": 2**63}
    with pytest.raises(msgspec.ValidationError, match="max_cost_micro_usd"):
        msgspec.convert(body, TaskRequest)
