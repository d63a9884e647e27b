"""SARIF 2.1.0 for check-pr's findings, the format code-scanning tools (GitHub among them) read."""

from __future__ import annotations

from typing import Any

from maestro.policy.check_pr import Finding, Review, level

VERSION = "2.1.0"
SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL = "maestro-guard"
# The project has no public home yet: rules link to the README's policy sections under this base.
INFORMATION_URI = "https://maestro.invalid/README.md"


def help_uri(policy: str) -> str:
    """Where a rule's family is documented."""
    return f"{INFORMATION_URI}#policy-{policy}"


def _rule(finding: Finding) -> dict[str, Any]:
    v = finding.violation
    rule: dict[str, Any] = {
        "id": v.rule_id,
        "name": v.rule_id.replace(".", "/"),
        "shortDescription": {"text": f"{v.policy} policy rule {v.rule_id}"},
        "helpUri": help_uri(v.policy),
        "defaultConfiguration": {"level": level(finding)},
        "properties": {"policy": v.policy, "severity": v.severity},
    }
    if v.fix:
        rule["help"] = {"text": v.fix}
    return rule


def _result(finding: Finding, index: int) -> dict[str, Any]:
    v = finding.violation
    region: dict[str, Any] = {"startLine": max(finding.line, 1)}
    if finding.column:
        region["startColumn"] = finding.column
    text = (v.message or v.rule_id) + (f" [{v.evidence}]" if v.evidence else "")
    return {
        "ruleId": v.rule_id,
        "ruleIndex": index,
        "level": level(finding),
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": finding.path, "uriBaseId": "%SRCROOT%"},
                    "region": region,
                }
            }
        ],
    }


def document(result: Review, *, tool_version: str = "") -> dict[str, Any]:
    """The SARIF log of one check-pr run: one run, its rules, one result per finding."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for finding in result.findings:
        rule_id = finding.violation.rule_id
        if rule_id not in index:
            index[rule_id] = len(rules)
            rules.append(_rule(finding))
        results.append(_result(finding, index[rule_id]))
    driver: dict[str, Any] = {"name": TOOL, "informationUri": INFORMATION_URI, "rules": rules}
    if tool_version:
        driver["version"] = tool_version
    decision = result.decision
    return {
        "version": VERSION,
        "$schema": SCHEMA_URI,
        "runs": [
            {
                "tool": {"driver": driver},
                "results": results,
                "properties": {
                    "verdict": decision.verdict,
                    "policyVersion": decision.policy_version,
                    "policyHash": decision.policy_hash,
                },
            }
        ],
    }
