"""One module per role; RUNNERS maps each role name to the function that does its work."""

from collections.abc import Mapping
from types import MappingProxyType

from proto.v1 import Role
from services.agents.roles import doc_writer, implementer, planner, reviewer, scaffolder, tester
from services.agents.roles.base import RoleResult, Runner

RUNNERS: Mapping[Role, Runner] = MappingProxyType(
    {
        "planner": planner.run,
        "scaffolder": scaffolder.run,
        "implementer": implementer.run,
        "tester": tester.run,
        "reviewer": reviewer.run,
        "doc-writer": doc_writer.run,
    }
)

__all__ = ["RUNNERS", "RoleResult", "Runner"]
