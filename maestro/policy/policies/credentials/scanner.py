"""Credentials policy: API keys, tokens, private keys and passwords in a request, found where, never shown.

Every text (the prompt, each context file's path and content, each command, each label) is scanned once
by one RE2 program (program.py) holding every rule, over an ASCII
view of the text (each other character becomes `?`, so offsets stay character offsets). RE2 runs in
time linear in the text whatever it holds. Python touches only candidates, and a request gets a bounded
number of those: past the bound the scan stops and says so instead of taking longer.

Span fields are "prompt", "context[<i>]", "context[<i>].path", "commands[<i>]" and "labels[<key>]".
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

import msgspec
import re2

from maestro.policy.policies import Action, Finding, Mode, Span
from maestro.policy.policies.credentials.program import LONG_MATCH, Budget, Candidate, program
from maestro.policy.policies.credentials.rules import Rule
from maestro.policy.policies.credentials.values import (
    basic_credentials,
    decoded_text,
    is_placeholder,
    is_secret_reference,
    is_variable,
    looks_secret,
)
from proto.v1 import ContextFile, Severity, TaskRequest, Violation

POLICY = "credentials"
MASK = "****"
MAX_CANDIDATES = 256
"""Candidates one request may cost: real code holds ~15 per MB, and a crafted flood stays fast."""
_VALUE_STARTS = " \t\n\"'`=,;([{<>"
_PATTERN_PREFIX = "re:"
_MAX_PATH = 4096
_FIX = "remove it and hand it to the task through a secret store; if it is real, rotate it now"


class CredentialsPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What a tenant asks of the credentials family."""

    action: Action = "deny"
    """What to do when a credential is found."""
    mode: Mode = "enforce"
    """`audit` records findings without changing the verdict."""
    allow: list[str] = []
    """Values that are not secrets, on top of the built-in placeholders; `re:<RE2>` matches a value."""
    disable: list[str] = []
    """Rule ids (`jwt` or `credentials.jwt`) not to report."""
    min_entropy: Annotated[float, msgspec.Meta(ge=0, le=8)] = 2.5
    """Bits per character a quoted generic secret needs; a bare (unquoted) one needs half a bit more."""
    max_findings: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    """Findings reported; one more says there were more. The list must fit in an event."""

    def __post_init__(self) -> None:
        """Refuse an allow pattern RE2 cannot compile (msgspec reports it as a validation error)."""
        _allowlist(tuple(self.allow))


@dataclass(frozen=True)
class _Allowlist:
    literals: frozenset[str]
    patterns: tuple[re2._Regexp, ...]

    def allows(self, value: str) -> bool:
        return value in self.literals or any(p.fullmatch(value) for p in self.patterns)


@lru_cache(maxsize=64)
def _allowlist(entries: tuple[str, ...]) -> _Allowlist:
    """The compiled form of a policy's allow list (cached: policies are few and long-lived)."""
    patterns = []
    for entry in entries:
        if entry.startswith(_PATTERN_PREFIX):
            try:
                patterns.append(re2.compile(entry[len(_PATTERN_PREFIX) :]))
            except re2.error as exc:
                raise ValueError(f"allow entry {entry!r} is not a valid RE2 pattern") from exc
    literals = frozenset(e for e in entries if not e.startswith(_PATTERN_PREFIX))
    return _Allowlist(literals, tuple(patterns))


_WRAPPED_BUDGET = 16
"""Candidates the text inside a base64-wrapped value may cost (it is one value, so a few suffice)."""


@dataclass(frozen=True)
class Hit:
    """One confirmed credential in one text: character offsets of the secret, rule and evidence."""

    rule: Rule
    start: int
    end: int
    evidence: str


def _evidence(rule: Rule, context: str, secret: str) -> str:
    """A redacted preview: a little context and a few leading characters, never the secret."""
    if rule.block:
        return secret[:80].split("\\n", 1)[0].split("\n", 1)[0][:60] + " " + MASK
    shown = secret[: min(rule.reveal, len(secret) // 3)]
    if rule.user:
        # Only what comes before the user name: a scheme (`postgres://`) or a flag (`-u`).
        context = context[: context.find("//") + 2] if "//" in context else context.split(maxsplit=1)[0] + " "
        return context + "…:" + MASK
    context = " ".join(context.split())
    if len(context) > 32:
        context = "…" + context[-31:]
    return context + shown + MASK


def _hits(text: str, policy: CredentialsPolicy, budget: Budget, limit: int) -> list[Hit]:
    """The credentials in `text` in order of position, until the budget runs out or `limit` are more.

    Where two hits overlap one is kept: a known format found inside a generic value (`token =
    "ghp_..."`) replaces the generic hit, and otherwise the first found stays.
    """
    data = text.encode("ascii", "replace")
    allow = _allowlist(tuple(policy.allow))
    disabled = {d.removeprefix("credentials.") for d in policy.disable}
    hits: list[Hit] = []
    for candidate in program().candidates(data, budget):
        if candidate.rule.rule_id in disabled:
            continue
        hit = _confirm(text, candidate, allow, policy)
        if hit is None:
            continue
        overlapping = [h for h in hits if h.start < hit.end and hit.start < h.end]
        if overlapping and (hit.rule.nested or not all(h.rule.nested for h in overlapping)):
            continue
        hits = [h for h in hits if h not in overlapping] + [hit]
        if len(hits) > limit:
            break
    return sorted(hits, key=lambda h: h.start)


def _confirm(text: str, candidate: Candidate, allow: _Allowlist, policy: CredentialsPolicy) -> Hit | None:
    """The hit a candidate is, or None when its value is a placeholder, a reference or not secret-like."""
    rule, start, end = candidate.rule, candidate.secret_start, candidate.secret_end
    if not rule.min_len <= end - start <= rule.max_len and not rule.block:
        return None
    secret = text[start:end]
    if rule.judge not in ("format", "basic", "wrapped"):
        quote = 2 if secret[:2] == '\\"' and secret[-2:] == '\\"' and len(secret) >= 4 else 1
        quoted = quote == 2 or (len(secret) >= 2 and secret[0] == secret[-1] and secret[0] in "\"'`")
        if quoted:
            start, end, secret = start + quote, end - quote, secret[quote:-quote]
        else:
            # `if tok == other.NAME:` ends a bare value with punctuation that is not part of it.
            secret = secret.rstrip(":.")
            end = start + len(secret)
        # Stand-ins first: they are most candidates of a flood, and the cheapest to tell.
        if allow.allows(secret) or is_placeholder(secret) or is_secret_reference(secret):
            return None
        # The key may sit inside a reference (`arn:aws:secretsmanager:...:secret:x`, `.../secrets/x`).
        if text[candidate.at - 1 : candidate.at] in (":", "/"):
            lo = max(0, candidate.at - LONG_MATCH)  # bounded, so a text without separators stays linear
            value_start = max(lo - 1, *(text.rfind(c, lo, candidate.at) for c in _VALUE_STARTS)) + 1
            if is_secret_reference(text[value_start:end]):
                return None
        if rule.judge == "entropy":
            if not looks_secret(secret, quoted, text[end : end + 1], policy.min_entropy):
                return None
        elif not secret or is_variable(secret):
            return None
    elif rule.judge == "basic":
        credentials = basic_credentials(secret)
        if credentials is None or is_variable(credentials[1]) or is_placeholder(credentials[1]):
            return None
    elif rule.judge == "wrapped":
        inner = decoded_text(secret)
        if inner is None or not _hits(inner, policy, Budget(_WRAPPED_BUDGET), 1):
            return None
    if allow.allows(secret) or (len(secret) <= rule.max_len and is_placeholder(secret)):
        return None
    return Hit(rule, start, end, _evidence(rule, text[candidate.at : start], secret))


@dataclass(frozen=True)
class _Text:
    field: str
    where: str
    text: str


def _texts(request: TaskRequest, policy: CredentialsPolicy) -> Iterator[_Text]:
    """Every text of a request with its span field and its location (secrets in paths masked)."""
    yield _Text("prompt", "prompt", request.prompt)
    for i, file in enumerate(request.context):
        yield _Text(f"context[{i}].path", f"context[{i}].path", file.path)
        yield _Text(f"context[{i}]", f"context:{mask_text(file.path, policy)}", file.content)
    for i, command in enumerate(request.commands):
        yield _Text(f"commands[{i}]", f"commands[{i}]", command)
    for key, value in request.labels.items():
        yield _Text(f"labels[{key}]", f"labels[{mask_text(key, policy)}]", value)


def check(request: TaskRequest, policy: CredentialsPolicy) -> list[Finding]:
    """Findings for the credentials in a request's prompt, context paths and files, commands and labels."""
    budget = Budget(MAX_CANDIDATES)
    findings: list[Finding] = []
    enforced = policy.mode == "enforce"
    for item in _texts(request, policy):
        hits = _hits(item.text, policy, budget, policy.max_findings - len(findings))
        findings += _located(item, hits, policy.action, enforced)
        if len(findings) > policy.max_findings:
            return [*findings[: policy.max_findings], _summary(policy, "credentials.more-findings", enforced)]
        if budget.left < 0:
            return [*findings, _summary(policy, "credentials.scan-incomplete", enforced)]
    return findings


def _located(item: _Text, hits: list[Hit], action: Action, enforced: bool) -> list[Finding]:
    """A finding for each hit in `item`, located by line and column."""
    findings: list[Finding] = []
    line, line_start, at = 1, 0, 0
    for hit in hits:
        # Counted from the previous hit, so many hits in one long line stay linear.
        line += item.text.count("\n", at, hit.start)
        line_start = max(line_start, item.text.rfind("\n", at, hit.start) + 1)
        at = hit.start
        findings.append(_finding(item, hit, line, hit.start - line_start + 1, action, enforced))
    return findings


def _finding(item: _Text, hit: Hit, line: int, column: int, action: Action, enforced: bool) -> Finding:
    rule = hit.rule
    return Finding(
        violation=Violation(
            policy=POLICY,
            rule_id=f"credentials.{rule.rule_id}",
            severity=rule.severity,
            location=f"{item.where}:{line}:{column}",
            evidence=hit.evidence,
            message=f"{rule.name} found in {item.where}",
            fix=_FIX,
            enforced=enforced,
        ),
        action=action,
        span=Span(item.field, hit.start, hit.end),
    )


def _summary(policy: CredentialsPolicy, rule_id: str, enforced: bool, where: str = "request") -> Finding:
    """The finding that ends a scan early; a redact policy cannot mask what it did not find, so it denies."""
    severity: Severity = "high"
    if rule_id.endswith("more-findings"):
        message = (
            f"more than {policy.max_findings} credentials; only the first {policy.max_findings} are listed"
        )
    else:
        holder = "the request" if where == "request" else where
        message = f"{holder} holds more than {MAX_CANDIDATES} secret-like candidates; the scan stopped there"
    return Finding(
        violation=Violation(
            policy=POLICY,
            rule_id=rule_id,
            severity=severity,
            location=where,
            message=message,
            fix="remove the credentials, or split the request",
            enforced=enforced,
        ),
        action="deny" if policy.action == "redact" else policy.action,
    )


def _marker(rule_id: str) -> str:
    return f"[REDACTED:{rule_id.removeprefix('credentials.')}]"


def _masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    """`text` with each span replaced by a marker; newlines inside a span are kept so lines do not move."""
    if not spans:
        return text
    parts: list[str] = []
    at = 0
    for start, end, rule_id in sorted(spans):
        start = max(start, at)
        if end <= start:
            continue
        parts.append(text[at:start])
        parts.append(_marker(rule_id) + "\n" * text.count("\n", start, end))
        at = end
    parts.append(text[at:])
    return "".join(parts)


def redact(request: TaskRequest, findings: list[Finding]) -> TaskRequest:
    """`request` with every finding's span masked; what no span covers is left exactly as it was."""
    by_field: dict[str, list[tuple[int, int, str]]] = {}
    for finding in findings:
        if finding.span is not None:
            span = finding.span
            by_field.setdefault(span.field, []).append((span.start, span.end, finding.violation.rule_id))
    if not by_field:
        return request

    def masked(field: str, text: str) -> str:
        return _masked(text, by_field.get(field, []))

    context = [
        ContextFile(
            path=masked(f"context[{i}].path", f.path)[:_MAX_PATH],
            content=masked(f"context[{i}]", f.content),
        )
        for i, f in enumerate(request.context)
    ]
    return msgspec.structs.replace(
        request,
        prompt=masked("prompt", request.prompt),
        context=context,
        commands=[masked(f"commands[{i}]", c) for i, c in enumerate(request.commands)],
        labels={k: masked(f"labels[{k}]", v) for k, v in request.labels.items()},
    )


def mask_text(text: str, policy: CredentialsPolicy | None = None) -> str:
    """`text` with every credential masked, for strings that leave the guard (reasons, messages)."""
    hits = _hits(text, policy or CredentialsPolicy(), Budget(MAX_CANDIDATES), MAX_CANDIDATES)
    return _masked(text, [(h.start, h.end, h.rule.rule_id) for h in hits])


@dataclass(frozen=True)
class MaskedText:
    """A text with every credential found in it masked, and the findings that say where they were."""

    text: str
    findings: list[Finding]
    """One per credential (up to the policy's max_findings, then one that says there were more), and one
    more when the scan stopped early."""
    complete: bool
    """False when the scan stopped at MAX_CANDIDATES candidates: what lies past that point was not scanned."""


def mask_found(text: str, where: str, policy: CredentialsPolicy) -> MaskedText:
    """`text` with every credential masked as in a request, each one located `<where>:<line>:<column>`.

    For a text that is not part of a request (what an agent produced): every credential is masked whatever
    the policy's action and mode; the findings carry them (enforced=False in audit mode).
    """
    budget = Budget(MAX_CANDIDATES)
    hits = _hits(text, policy, budget, MAX_CANDIDATES)
    enforced = policy.mode == "enforce"
    findings = _located(_Text(where, where, text), hits, policy.action, enforced)
    if len(findings) > policy.max_findings:
        summary = _summary(policy, "credentials.more-findings", enforced, where)
        findings = [*findings[: policy.max_findings], summary]
    complete = budget.left >= 0
    if not complete:
        findings.append(_summary(policy, "credentials.scan-incomplete", enforced, where))
    return MaskedText(_masked(text, [(h.start, h.end, h.rule.rule_id) for h in hits]), findings, complete)


def scan(request: TaskRequest, limit: int = 20) -> list[Violation]:
    """The violations `check` finds with the default policy (the engine's interface before bundles)."""
    return [f.violation for f in check(request, CredentialsPolicy(max_findings=limit))]
