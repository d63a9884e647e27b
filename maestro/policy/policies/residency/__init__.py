"""Data residency: every place that processes or stores a tenant's data must lie where the tenant allows.

places.py says where a hop is (a set of countries), config.py what a bundle writes, hops.py which pins a
task is held to (its tenant's, its `data_region`, every tenant in `data_tenants`) and the hops outside them.
"""

from __future__ import annotations

from maestro.policy.policies.residency.config import Peers, Pin, ResidencyPolicy, problems
from maestro.policy.policies.residency.hops import POLICY, Constraint, check, constraints, hops, model_of
from maestro.policy.policies.residency.places import (
    Cloud,
    Endpoint,
    Location,
    ModelRoute,
    Place,
    describe,
    locate,
    locate_endpoint,
)
from proto.v1.regions import jurisdiction_of_region

__all__ = [
    "POLICY",
    "Cloud",
    "Constraint",
    "Endpoint",
    "Location",
    "ModelRoute",
    "Peers",
    "Pin",
    "Place",
    "ResidencyPolicy",
    "check",
    "constraints",
    "describe",
    "hops",
    "jurisdiction_of_region",
    "locate",
    "locate_endpoint",
    "model_of",
    "problems",
]
