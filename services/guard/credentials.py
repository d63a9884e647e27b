"""Find credentials in a request's text: common key formats, reported with where they are, never what.

Every pattern is a literal prefix followed by bounded character classes, so matching is linear in the
text and cannot backtrack catastrophically. A rule's regex runs only when one of its literal prefixes
occurs in the text (`str.__contains__` is a fast C search), so clean text costs a few substring scans.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from proto.v1 import Severity, TaskRequest, Violation

POLICY = "credentials"
MASK = "****"


@dataclass(frozen=True)
class Rule:
    """One kind of credential: how it looks, how bad a leak is, and how much of a match may be shown."""

    rule_id: str
    name: str
    needles: tuple[str, ...]
    pattern: re.Pattern[str]
    severity: Severity
    reveal: int
    """Leading characters shown in the evidence (at most a third of the match is ever shown)."""
    show_whole: bool = False
    """The match is a marker, not the secret (a PEM header), so it is shown whole."""


# Boundaries: a key embedded in a longer token (`task-...`, `XAKIA...`) is not that key.
RULES: tuple[Rule, ...] = (
    Rule(
        "credentials.aws-access-key",
        "AWS access key id",
        ("AKIA", "ASIA"),
        re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        "critical",
        6,
    ),
    Rule(
        "credentials.github-token",
        "GitHub token",
        ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"),
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})"
            r"(?![A-Za-z0-9_])"
        ),
        "critical",
        6,
    ),
    Rule(
        "credentials.anthropic-key",
        "Anthropic API key",
        ("sk-ant-",),
        re.compile(r"(?<![A-Za-z0-9_-])sk-ant-[A-Za-z0-9_-]{20,248}"),
        "critical",
        8,
    ),
    Rule(
        "credentials.openai-key",
        "OpenAI-style API key",
        ("sk-",),
        # A plain `sk-` key is one long alphanumeric run (hyphenated prose never is); project,
        # service-account and admin keys carry their kind and may hold `-` and `_`.
        re.compile(
            r"(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,248}"
            r"|[A-Za-z0-9]{32,252})"
        ),
        "critical",
        5,
    ),
    Rule(
        "credentials.slack-token",
        "Slack token",
        ("xox",),
        re.compile(r"(?<![A-Za-z0-9_-])xox[abposr]-[A-Za-z0-9]{6,64}-[A-Za-z0-9-]{6,250}"),
        "high",
        5,
    ),
    Rule(
        "credentials.stripe-live-key",
        "Stripe live secret key",
        ("sk_live_", "rk_live_"),
        re.compile(r"(?<![A-Za-z0-9_])[sr]k_live_[A-Za-z0-9]{16,247}"),
        "critical",
        8,
    ),
    Rule(
        "credentials.google-api-key",
        "Google API key",
        ("AIza",),
        re.compile(r"(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])"),
        "high",
        6,
    ),
    Rule(
        "credentials.private-key",
        "private key",
        ("-----BEGIN ",),
        re.compile(r"-----BEGIN (?:(?:RSA|DSA|EC|OPENSSH|ENCRYPTED|PGP) )?PRIVATE KEY(?: BLOCK)?-----"),
        "critical",
        0,
        show_whole=True,
    ),
)


@dataclass(frozen=True)
class Finding:
    """One credential in one text: which rule, where (1-based line and column), and a redacted preview."""

    rule: Rule
    line: int
    column: int
    evidence: str
    start: int
    end: int


def preview(rule: Rule, secret: str) -> str:
    """What of a match may be shown: a few leading characters, never more than a third of it."""
    if rule.show_whole:
        return secret
    return secret[: min(rule.reveal, len(secret) // 3)] + MASK


def find(text: str) -> Iterator[Finding]:
    """Every credential in `text`, rule by rule, each in order of position."""
    for rule in RULES:
        if not any(needle in text for needle in rule.needles):
            continue
        for match in rule.pattern.finditer(text):
            start = match.start()
            line_start = text.rfind("\n", 0, start) + 1
            yield Finding(
                rule=rule,
                line=text.count("\n", 0, start) + 1,
                column=start - line_start + 1,
                evidence=preview(rule, match.group()),
                start=start,
                end=match.end(),
            )


def redact(text: str) -> str:
    """`text` with every credential replaced by its redacted preview (for reasons and messages)."""
    findings = sorted(find(text), key=lambda f: f.start)
    if not findings:
        return text
    parts: list[str] = []
    at = 0
    for f in findings:
        if f.start < at:
            continue
        parts.append(text[at : f.start])
        parts.append(f.evidence if not f.rule.show_whole else f"[{f.rule.name}]")
        at = f.end
    parts.append(text[at:])
    return "".join(parts)


def _violation(finding: Finding, where: str) -> Violation:
    rule = finding.rule
    return Violation(
        policy=POLICY,
        rule_id=rule.rule_id,
        severity=rule.severity,
        location=f"{where}:{finding.line}:{finding.column}",
        evidence=finding.evidence,
        message=f"{rule.name} found in {where}",
        fix=f"remove the {rule.name} and pass it to the task through a secret store; "
        "if it is real, rotate it now",
    )


def _texts(request: TaskRequest) -> Iterator[tuple[str, str]]:
    yield "prompt", request.prompt
    for file in request.context:
        yield f"context:{file.path}", file.content
    for n, command in enumerate(request.commands):
        yield f"commands[{n}]", command
    for key, value in request.labels.items():
        yield f"labels[{key}]", value


def scan(request: TaskRequest, limit: int = 20) -> list[Violation]:
    """Violations for the credentials in the prompt, every context file, every command and label.

    At most `limit` are returned: one is enough to deny, and the list must fit in an event.
    """
    violations: list[Violation] = []
    for where, text in _texts(request):
        for finding in find(text):
            violations.append(_violation(finding, where))
            if len(violations) >= limit:
                return violations
    return violations
