"""Read JUnit XML reports (pytest's `--junitxml`, and most test runners') into test cases (pure, no I/O).

The reports come from commands the task ran, so they are untrusted input: they are parsed with the
standard library's ElementTree on expat >= 2.4.1, which refuses entity-expansion attacks (billion laughs)
and never fetches external entities or DTDs, and a report larger than MAX_REPORT_BYTES is not read. That
covers what defusedxml would add for this use, without another dependency.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from proto.v1.work import CaseOutcome, JUnitCase

MAX_REPORT_BYTES = 8 * 1024 * 1024
_MESSAGE_CHARS = 500
_SUITE_TAGS = ("testsuites", "testsuite")


def cases(report: bytes) -> list[JUnitCase] | None:
    """The test cases of one JUnit XML report, in order; None when it is not one (not XML, too large, or
    another kind of document)."""
    if len(report) > MAX_REPORT_BYTES:
        return None
    try:
        root = ET.fromstring(report)
    except ET.ParseError:
        return None
    if root.tag not in _SUITE_TAGS:
        return None
    return [_case(element) for element in root.iter("testcase")]


def _case(element: ET.Element) -> JUnitCase:
    classname, name = element.get("classname", ""), element.get("name", "")
    outcome: CaseOutcome = "passed"
    message = ""
    for tag, kind in (("failure", "failed"), ("error", "errored"), ("skipped", "skipped")):
        child = element.find(tag)
        if child is not None:
            outcome = kind  # type: ignore[assignment]
            message = (child.get("message") or child.text or "").strip()[:_MESSAGE_CHARS]
            break
    return JUnitCase(name=f"{classname}::{name}" if classname else name, outcome=outcome, message=message)


def counts(found: Iterable[JUnitCase]) -> dict[CaseOutcome, int]:
    """How many cases ended each way."""
    total: dict[CaseOutcome, int] = {"passed": 0, "failed": 0, "errored": 0, "skipped": 0}
    for case in found:
        total[case.outcome] += 1
    return total
