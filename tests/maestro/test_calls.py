"""Request/reply calls as a caller sees them: every way an endpoint fails to answer is a RemoteError."""

from __future__ import annotations

import pytest

from maestro import topics
from maestro.bus import Bus
from maestro.errors import RemoteError
from proto.v1 import GetLedger


async def test_a_partition_owner_that_never_answers_is_a_503_to_retry(bus: Bus) -> None:
    # A replica killed by SIGKILL keeps its subscription until the server notices: requests to the partition
    # it owned go unanswered. The caller must get the 503 it retries on, as for any late answer.
    owner = await bus.nc.subscribe(topics.BUDGET_GET.partition_subject("acme"))
    await bus.nc.flush()
    try:
        with pytest.raises(RemoteError) as raised:
            await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant="acme"), key="acme")
        assert raised.value.code == 503 and "did not answer in time" in raised.value.description
    finally:
        await owner.unsubscribe()


async def test_no_budget_running_at_all_is_a_503(bus: Bus) -> None:
    with pytest.raises(RemoteError) as raised:
        await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant="acme"), key="acme")
    assert raised.value.code == 503
    assert "no maestro.v1.budget.get service is running" in raised.value.description
