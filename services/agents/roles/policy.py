"""The guard's families applied to what agents produce: commands a model proposes, and a change under
review (the license gate on generated code). The engine and check-pr's placing of findings do the work.

A role judges by the bundle in force as its task's tenant sees it (Bundle.as_seen_by, handed to every
runner); the shipped one where none is handed (a role run on its own).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from maestro import codec
from maestro.policy import check_pr, engine
from maestro.policy.bundle import Bundle, load_default
from proto.v1 import Role, TaskRequest
from proto.v1.work import ReviewFinding, ReviewSeverity

_COMMAND_INDEX = re.compile(r"^commands\[(\d+)\]")


@functools.cache
def shipped_bundle() -> Bundle:
    """The policy bundle Maestro ships, parsed once."""
    return load_default()


@dataclass(frozen=True)
class Judged:
    """Proposed commands split by the commands family: the ones it lets run, and a finding per one dropped."""

    allowed: list[str]
    findings: list[ReviewFinding]


def judge_commands(commands: Iterable[str], role: Role, bundle: Bundle) -> Judged:
    """The commands family's judgement of commands a model proposed (as a task's `commands` would be
    judged): any enforced violation (deny, or approve: no human is asked here) drops the command."""
    proposed = list(commands)
    if not proposed:
        return Judged([], [])
    request = TaskRequest(tenant=check_pr.TENANT, role=role, prompt="", commands=proposed)
    decision = engine.evaluate(request, len(codec.encode(request)), check_pr.commands_bundle(bundle)).decision
    dropped: dict[int, ReviewFinding] = {}
    for violation in decision.violations:
        found = _COMMAND_INDEX.match(violation.location)
        if violation.policy != "commands" or not violation.enforced or not found:
            continue
        index = int(found.group(1))
        dropped.setdefault(
            index,
            ReviewFinding(
                path=f"commands[{index}]",
                severity="warning",
                message=f"dropped the proposed command {proposed[index][:200]!r}: {violation.message}",
                rule=violation.rule_id,
            ),
        )
    allowed = [c for i, c in enumerate(proposed) if i not in dropped]
    return Judged(allowed, [dropped[i] for i in sorted(dropped)])


_SEVERITY: dict[str, ReviewSeverity] = {"error": "error", "warning": "warning", "note": "note"}


@dataclass(frozen=True)
class PolicyReview:
    """The guard families' findings on a change, each on its file and line, and the bundle's version."""

    findings: list[ReviewFinding]
    blocking: bool
    """Whether the engine would refuse the change (an enforced deny or approve)."""
    policy_version: str


def review_change(
    files: Mapping[str, str], added: Mapping[str, Iterable[int]], bundle: Bundle
) -> PolicyReview:
    """Judge the added lines of `files` (path → text; `added`: the 1-based added lines of each) with the
    credentials, licenses and commands families, as `maestro check-pr` judges a branch."""
    changed = [
        check_pr.ChangedFile(path=p, content=files[p], added=frozenset(added.get(p, ())))
        for p in sorted(files)
        if added.get(p)
    ]
    result = check_pr.review(changed, bundle)
    findings = [
        ReviewFinding(
            path=f.path,
            line=f.line,
            severity=_SEVERITY[check_pr.level(f)],
            message=f.violation.message or f.violation.rule_id,
            rule=f.violation.rule_id,
        )
        for f in result.findings
    ]
    return PolicyReview(findings, result.verdict != "allow", result.decision.policy_version)
