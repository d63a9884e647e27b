"""Value rules of the wire types: what a field can hold is decided by its type, at every edge alike."""

from __future__ import annotations

import msgspec
import pytest

from proto.v1 import TaskRequest, regions
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


@pytest.mark.parametrize(
    ("data_region", "pinned"),
    [
        ("DE", "de"),
        ("uk", "gb"),
        ("eea", "eea"),
        ("eu-central-1", "de"),
        ("eu-west-1", "ie"),  # a bare name is AWS's first: data_region predates the clouds that reuse it
        ("aws:eu-west-1", "ie"),
        ("alibaba:eu-west-1", "gb"),
        ("oci:eu-frankfurt-1", "de"),
        ("westeurope", "nl"),
        ("alibaba:eu-frankfurt-1", None),
        ("mars:eu-west-1", None),
        ("europe", None),
    ],
)
def test_a_data_region_pins_to_a_country_or_a_bloc(data_region: str, pinned: str | None) -> None:
    assert regions.jurisdiction_of(data_region) == pinned
    body = {"tenant": "acme", "role": "planner", "prompt": "p", "data_region": data_region}
    if pinned is None:
        with pytest.raises(msgspec.ValidationError, match="neither a jurisdiction"):
            msgspec.convert(body, TaskRequest)
    else:
        assert msgspec.convert(body, TaskRequest).data_region == data_region


def test_the_tenants_a_task_touches_are_tenant_names_and_tenant_data_defaults_to_true() -> None:
    plain = TaskRequest(tenant="acme", role="planner", prompt="p")
    assert (plain.tenant_data, plain.data_tenants) == (True, [])
    body = {"tenant": "acme", "role": "planner", "prompt": "p", "data_tenants": ["Not A Tenant"]}
    with pytest.raises(msgspec.ValidationError, match="data_tenants"):
        msgspec.convert(body, TaskRequest)
