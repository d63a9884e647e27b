"""Each tenant's share of the agents as the policy bundle in force says: its `scheduling` section merged over
the default's (a mapping key by key, like the rest of the bundle), reloaded whenever the bundle changes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
import yaml

from proto.v1.scheduling import Scheduling
from services.orchestrator.dispatch.fair import Share

log = logging.getLogger(__name__)

_SECTION = "scheduling"
_PER_ROLE = "max_running_per_role"


class Shares:
    """The tenants' shares in force, swapped whole when a bundle arrives. The guard refuses a bundle that
    does not validate, and so does this: the shares stay as they were."""

    def __init__(self) -> None:
        self._default = Share()
        self._tenants: Mapping[str, Share] = {}
        self.revision = 0

    def of(self, tenant: str) -> Share:
        """The share of one tenant: its own, else the default's."""
        return self._tenants.get(tenant, self._default)

    def offer(self, value: bytes | None, revision: int) -> None:
        """Take the shares of the bundle stored at `revision` (None: deleted, back to the shipped bundle,
        whose scheduling is the default of every field)."""
        if revision and revision <= self.revision:
            return
        self.revision = max(self.revision, revision)
        try:
            self._default, self._tenants = shares_in(value) if value is not None else (Share(), {})
        except (yaml.YAMLError, msgspec.ValidationError, TypeError) as exc:
            log.error("policy bundle at revision %d: its scheduling is kept as it was: %s", revision, exc)


def shares_in(text: bytes | str) -> tuple[Share, dict[str, Share]]:
    """The default share and each tenant's, from a bundle's YAML; raises on a section that does not
    validate."""
    data = yaml.safe_load(text) or {}
    default = _section(data.get("default"))
    tenants = {
        tenant: _share(_merged(default, _section(override)))
        for tenant, override in (data.get("tenants") or {}).items()
        if _section(override)
    }
    return _share(default), tenants


def _section(policy: Any) -> dict[str, Any]:
    section = policy.get(_SECTION) if isinstance(policy, dict) else None
    if section is not None and not isinstance(section, dict):
        raise TypeError(f"{_SECTION} must be a mapping, not {type(section).__name__}")
    return section or {}


def _merged(default: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    per_role = {**(default.get(_PER_ROLE) or {}), **(override.get(_PER_ROLE) or {})}
    return {**default, **override, _PER_ROLE: per_role}


def _share(section: dict[str, Any]) -> Share:
    scheduling = msgspec.convert(section, Scheduling)
    return Share(
        weight=scheduling.weight,
        max_running=scheduling.max_running,
        max_running_per_role={str(role): n for role, n in scheduling.max_running_per_role.items()},
        starts_per_s=scheduling.starts_per_s,
        burst=scheduling.burst,
    )
