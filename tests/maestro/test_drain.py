"""The drain's order, without a process: intake first, then the running tasks, then everything else."""

from __future__ import annotations

from maestro.drain import default_drain_s, stages
from maestro.settings import Settings
from maestro.supervisor import plan_children


def test_the_guard_stops_first_the_agents_next_and_every_other_service_last() -> None:
    children = plan_children([["planner"], ["tester"]], free_ports=True, api_port=0)
    planned = [(s.what, names, s.once_folded) for s, names in stages([(c.name, c.module) for c in children])]
    assert next(s.closes for s, _ in stages([(c.name, c.module) for c in children])) == (
        "services.orchestrator",
    )
    assert planned == [
        ("intake", ["guard"], False),
        ("running tasks", ["agents-planner", "agents-tester"], False),
        ("the rest", ["budget-1", "budget-2", "orchestrator"], True),
    ]


def test_a_stage_with_nothing_to_stop_is_left_out() -> None:
    planned = stages([("orchestrator", "services.orchestrator"), ("agents", "services.agents")])
    assert [(stage.what, names) for stage, names in planned] == [
        ("running tasks", ["agents"]),
        ("the rest", ["orchestrator"]),
    ]


def test_the_default_deadline_outlasts_a_service_finishing_its_in_flight_work() -> None:
    # A service gives in-flight work max(ack wait, 10 s) after SIGTERM (maestro/runtime.py): killed before,
    # an agent would leave its task's command and workspace behind.
    for ack_wait_s in (2.0, 30.0, 120.0):
        assert default_drain_s(Settings(ack_wait_s=ack_wait_s)) > max(ack_wait_s, 10.0)
