"""The SARIF log check-pr writes holds what the SARIF 2.1.0 schema requires of every part it emits."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from maestro.policy import sarif
from maestro.policy.check_pr import Finding, Review
from proto.v1 import Decision, Violation

# From the SARIF 2.1.0 schema (sarif-schema-2.1.0.json): for each object check-pr emits, its required
# properties and every property it may have (these objects forbid additional properties).
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "sarifLog": (
        {"version", "runs"},
        {"$schema", "version", "runs", "inlineExternalProperties", "properties"},
    ),
    "run": ({"tool"}, {"tool", "results", "invocations", "artifacts", "originalUriBaseIds", "properties"}),
    "tool": ({"driver"}, {"driver", "extensions", "properties"}),
    "driver": (
        {"name"},
        {
            "name",
            "version",
            "semanticVersion",
            "informationUri",
            "rules",
            "fullName",
            "organization",
            "properties",
        },
    ),
    "rule": (
        {"id"},
        {
            "id",
            "name",
            "shortDescription",
            "fullDescription",
            "help",
            "helpUri",
            "defaultConfiguration",
            "properties",
        },
    ),
    "message": (set(), {"text", "markdown", "id", "arguments", "properties"}),
    "multiformatMessageString": ({"text"}, {"text", "markdown", "properties"}),
    "reportingConfiguration": (set(), {"enabled", "level", "rank", "parameters", "properties"}),
    "result": (
        {"message"},
        {
            "ruleId",
            "ruleIndex",
            "rule",
            "kind",
            "level",
            "message",
            "locations",
            "partialFingerprints",
            "properties",
        },
    ),
    "location": (set(), {"id", "physicalLocation", "logicalLocations", "message", "properties"}),
    "physicalLocation": (set(), {"address", "artifactLocation", "region", "contextRegion", "properties"}),
    "artifactLocation": (set(), {"uri", "uriBaseId", "index", "description", "properties"}),
    "region": (
        set(),
        {
            "startLine",
            "startColumn",
            "endLine",
            "endColumn",
            "charOffset",
            "charLength",
            "snippet",
            "properties",
        },
    ),
}
LEVELS = {"none", "note", "warning", "error"}


def conforms(kind: str, node: Any) -> None:
    required, allowed = SCHEMA[kind]
    assert isinstance(node, dict), f"{kind} is not an object"
    assert required <= node.keys(), f"{kind} misses {required - node.keys()}"
    assert node.keys() <= allowed, f"{kind} has {node.keys() - allowed}, which the schema forbids"
    if "properties" in node:
        assert isinstance(node["properties"], dict)


def absolute_uri(value: Any) -> bool:
    parsed = urlparse(value)
    return isinstance(value, str) and bool(parsed.scheme) and bool(parsed.netloc)


def validate(log: dict[str, Any]) -> None:
    """Every constraint of the SARIF 2.1.0 schema on the parts check-pr writes."""
    conforms("sarifLog", log)
    assert log["version"] == "2.1.0"
    assert absolute_uri(log["$schema"])
    assert isinstance(log["runs"], list) and log["runs"]
    for run in log["runs"]:
        conforms("run", run)
        conforms("tool", run["tool"])
        driver = run["tool"]["driver"]
        conforms("driver", driver)
        assert isinstance(driver["name"], str) and driver["name"]
        assert absolute_uri(driver["informationUri"])
        rules = driver["rules"]
        assert isinstance(rules, list)
        assert len({r["id"] for r in rules}) == len(rules), "rule ids are unique"
        for rule in rules:
            conforms("rule", rule)
            assert isinstance(rule["id"], str) and rule["id"]
            conforms("multiformatMessageString", rule["shortDescription"])
            assert isinstance(rule["shortDescription"]["text"], str)
            assert absolute_uri(rule["helpUri"])
            if "help" in rule:
                conforms("multiformatMessageString", rule["help"])
            conforms("reportingConfiguration", rule["defaultConfiguration"])
            assert rule["defaultConfiguration"]["level"] in LEVELS
        assert isinstance(run["results"], list)
        for result in run["results"]:
            conforms("result", result)
            assert isinstance(result["ruleId"], str)
            index = result["ruleIndex"]
            assert isinstance(index, int) and index >= -1
            assert rules[index]["id"] == result["ruleId"]
            assert result["level"] in LEVELS
            conforms("message", result["message"])
            assert isinstance(result["message"]["text"], str) and result["message"]["text"]
            assert isinstance(result["locations"], list) and result["locations"]
            for location in result["locations"]:
                conforms("location", location)
                physical = location["physicalLocation"]
                conforms("physicalLocation", physical)
                conforms("artifactLocation", physical["artifactLocation"])
                uri = physical["artifactLocation"]["uri"]
                assert isinstance(uri, str) and not urlparse(uri).scheme, "a path relative to the repository"
                region = physical["region"]
                conforms("region", region)
                assert isinstance(region["startLine"], int) and region["startLine"] >= 1
                if "startColumn" in region:
                    assert isinstance(region["startColumn"], int) and region["startColumn"] >= 1


KEY = Violation(
    policy="credentials",
    rule_id="credentials.aws-access-key",
    severity="critical",
    location="context:app.py:3:12",
    evidence="AKIA************",
    message="AWS access key id found in context:app.py",
    fix="rotate it",
)
LICENSE = Violation(
    policy="licenses",
    rule_id="licenses.strong-copyleft",
    severity="medium",
    location="context:lib/vendored.py",
    message="GPL-3.0-or-later is strong copyleft",
)
AUDIT = Violation(policy="credentials", rule_id="credentials.generic", severity="low", enforced=False)


def review() -> Review:
    findings = [
        Finding("app.py", 3, 12, KEY),
        Finding("lib/vendored.py", 0, 0, LICENSE),
        Finding("app.py", 9, 1, KEY),
        Finding("cfg.py", 2, 0, AUDIT),
    ]
    decision = Decision(
        verdict="deny",
        violations=[KEY, LICENSE, KEY, AUDIT],
        policy_version="builtin-2",
        policy_hash="ab" * 32,
    )
    return Review(decision, findings)


def test_the_document_has_the_structure_sarif_2_1_0_requires() -> None:
    log = json.loads(json.dumps(sarif.document(review(), tool_version="0.1.0")))
    validate(log)


def test_each_rule_is_listed_once_and_results_point_at_it() -> None:
    log = sarif.document(review())
    driver = log["runs"][0]["tool"]["driver"]
    assert [r["id"] for r in driver["rules"]] == [
        "credentials.aws-access-key",
        "licenses.strong-copyleft",
        "credentials.generic",
    ]
    results = log["runs"][0]["results"]
    assert [r["ruleIndex"] for r in results] == [0, 1, 0, 2]
    assert [r["level"] for r in results] == ["error", "warning", "error", "note"]
    first = results[0]
    assert first["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 12}
    assert first["message"]["text"] == "AWS access key id found in context:app.py [AKIA************]"
    # A file-level finding has no line: SARIF needs one, so it points at the first.
    assert results[1]["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    assert log["runs"][0]["properties"]["verdict"] == "deny"


def test_an_empty_review_is_a_valid_log_with_no_results() -> None:
    log = sarif.document(Review(Decision(verdict="allow"), []))
    validate(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []
