"""What the commands family protects and how hard it looks: its part of a tenant's policy bundle."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from maestro.policy.policies import Mode

Override = Literal["deny", "approve", "audit", "off"]


class CommandsPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What the commands family protects and how hard it looks."""

    mode: Mode = "enforce"
    protected_branches: tuple[str, ...] = ("main", "master", "release/*", "production")
    """Branches no task may force-push or delete (glob patterns)."""
    production_namespaces: tuple[str, ...] = (
        "prod",
        "prod-*",
        "*-prod",
        "production",
        "production-*",
        "*-production",
        "kube-system",
        "kube-public",
        "kube-node-lease",
    )
    """Kubernetes namespaces where deletes are denied and changes need approval (glob patterns)."""
    workspace_roots: tuple[str, ...] = ("/tmp/", "/var/tmp/", "/workspace/")
    """Absolute paths strictly below these count as inside the workspace (the roots themselves do not)."""
    system_paths: tuple[str, ...] = (
        "/etc",
        "/boot",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib64",
        "/usr/share",
        "/var/spool/cron",
        "/var/lib",
        "/root",
        "/sys",
        "/proc",
        "/System",
        "/Library",
    )
    """Writing below these is denied (system configuration and binaries)."""
    approve_sudo: bool = True
    """Any other command run through sudo/doas needs approval (package installs always do)."""
    max_command_chars: Annotated[int, msgspec.Meta(ge=1)] = 65536
    """Longer commands are not judged and need approval (bashlex reads ~1-10 µs a character)."""
    max_depth: Annotated[int, msgspec.Meta(ge=0, le=16)] = 4
    """How deep nested shells and one-liners (`bash -c "python -c '...'"`) are followed."""
    overrides: dict[str, Override] = {}
    """Per-rule action: e.g. {"commands.publish": "off"} lets a release pipeline publish."""
