"""Value rules of the wire types: what a field can hold is decided by its type, at every edge alike."""

from __future__ import annotations

import msgspec
import pytest

from proto.v1 import Commit, Release, Reservation, TaskRequest, regions, tasks
from proto.v1.budget import (
    MAX_ATTEMPT,
    MAX_RESERVATION_ID,
    Reserve,
    reservation_id_for,
    task_of_reservation,
)
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


@pytest.mark.parametrize("task", ["t1", "a", "t018f3c2a9b1c4d5e6f7a8b9c0d", "T_-9" + "x" * 60])
def test_every_attempt_has_its_own_reservation_id_and_each_maps_back_to_its_task(task: str) -> None:
    ids = [reservation_id_for(task, attempt=n) for n in range(1, MAX_ATTEMPT + 1)]
    assert ids[0] == reservation_id_for(task) == f"r-{task}"  # attempt 1's id is what it always was
    assert ids[1] == f"r-{task}.2" and ids[-1] == f"r-{task}.{MAX_ATTEMPT}"
    assert len(set(ids)) == MAX_ATTEMPT
    for rid in ids:
        assert task_of_reservation(rid) == task
        body = {"tenant": "acme", "reservation_id": rid, "usage": {"model": "m"}}
        assert msgspec.convert(body, Commit).reservation_id == rid
        assert (
            Reservation(tenant="acme", task_id=task, granted=True, reservation_id=rid).reservation_id == rid
        )


def test_the_longest_task_id_at_its_last_attempt_is_the_longest_reservation_id() -> None:
    rid = reservation_id_for("t" * 64, attempt=MAX_ATTEMPT)
    assert len(rid) == MAX_RESERVATION_ID == 69
    assert msgspec.convert({"tenant": "acme", "reservation_id": rid}, Release).reservation_id == rid
    with pytest.raises(msgspec.ValidationError, match="reservation_id"):
        msgspec.convert({"tenant": "acme", "reservation_id": rid + "0"}, Release)
    with pytest.raises(msgspec.ValidationError, match="reservation_id"):
        msgspec.convert(
            {"tenant": "acme", "task_id": "t1", "granted": True, "reservation_id": rid + "0"}, Reservation
        )


@pytest.mark.parametrize(
    "rid",
    [
        "r-t1.1",  # attempt 1 has no suffix: one id per attempt
        "r-t1.0",
        "r-t1.02",
        "r-t1.21",
        "r-t1.",
        "r-t1.2.3",
        "r-t1.x",
        "r-t1.2\n",
        "r-.2",
        "t1.2",
        "r-" + "t" * 65,
        "r-" + "t" * 65 + ".2",
    ],
)
def test_a_reservation_id_that_no_attempt_spells_is_refused(rid: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="reservation_id"):
        msgspec.convert({"tenant": "acme", "reservation_id": rid}, Release)


def test_an_attempt_is_1_by_default_and_at_most_the_last_a_retry_policy_allows() -> None:
    body = {"tenant": "acme", "task_id": "t1", "estimate_micro_usd": 1}
    assert msgspec.convert(body, Reserve).attempt == 1
    assert msgspec.convert({**body, "attempt": MAX_ATTEMPT}, Reserve).attempt == MAX_ATTEMPT
    for attempt in (0, -1, MAX_ATTEMPT + 1, 1.5, "2"):
        with pytest.raises(msgspec.ValidationError, match="attempt"):
            msgspec.convert({**body, "attempt": attempt}, Reserve)
    # tasks.py imports budget.py, so the bound is spelled twice: they must agree.
    assert MAX_ATTEMPT == tasks.MAX_ATTEMPTS


def test_an_escrow_is_a_reservation_id_and_left_off_the_wire_when_none() -> None:
    body = {"tenant": "acme", "task_id": "s1", "estimate_micro_usd": 1}
    assert msgspec.convert(body, Reserve).escrow is None
    assert b"escrow" not in msgspec.json.encode(msgspec.convert(body, Reserve))
    escrow = reservation_id_for("wf1--escrow")
    assert msgspec.convert({**body, "escrow": escrow}, Reserve).escrow == escrow
    for bad in ("wf1--escrow", "r-wf1--escrow\n", ""):
        with pytest.raises(msgspec.ValidationError, match="escrow"):
            msgspec.convert({**body, "escrow": bad}, Reserve)
