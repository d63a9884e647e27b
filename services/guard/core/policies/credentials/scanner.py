"""Credentials policy: API keys, tokens, private keys and passwords in a request, found where, never shown.

Every text (the prompt, each context file's path and content, each command, each label) is scanned once
by one RE2 program holding every rule (rules.py, vendors.py, context.py, in that order), over an ASCII
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

from proto.v1 import ContextFile, Severity, TaskRequest, Violation
from services.guard.core.policies import Action, Finding, Mode, Span
from services.guard.core.policies.credentials.context import CONTEXT
from services.guard.core.policies.credentials.rules import FORMATS, KEYS, Rule
from services.guard.core.policies.credentials.values import (
    basic_credentials,
    decoded_text,
    is_placeholder,
    is_secret_reference,
    is_variable,
    looks_secret,
)
from services.guard.core.policies.credentials.vendors import VENDOR_FORMATS

POLICY = "credentials"
MASK = "****"
MAX_CANDIDATES = 256
"""Candidates one request may cost: real code holds ~15 per MB, and a crafted flood stays fast."""
LONG_MATCH = 256
"""Matches longer than this are judged without locating their secret group (see Scanner)."""
_TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=")
_VALUE_OPENERS = (b"=", b":", b">", b" ", b"\t", b'"', b"'", b"`")
_FORMAT_WINDOW = 16384
"""How far into a too-long generic value a known format is looked for (a JWT's own cap)."""
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
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


def _options(capture: bool) -> re2.Options:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.never_capture = not capture
    # Room for the DFA of ~50 alternations, so RE2 never falls back to its slower NFA on big inputs.
    options.max_mem = 64 << 20
    return options


class Budget:
    """Candidates left for one request: a flood of near-misses or placeholders cannot buy time."""

    def __init__(self, left: int) -> None:
        self.left = left

    def spend(self) -> bool:
        self.left -= 1
        return self.left >= 0


@dataclass(frozen=True)
class Candidate:
    """A stretch of text some rule matched: the whole match, and the secret inside it."""

    rule: Rule
    at: int
    end: int
    secret_start: int
    secret_end: int


class Scanner:
    """Some rules compiled three ways: one capture-free program to find candidates (a DFA pass), a set
    to tell which rule a candidate belongs to, and each rule alone to find its secret inside it."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        patterns = [rule.pattern.encode("ascii") for rule in rules]
        self.find = re2.compile(b"|".join(b"(?:" + p + b")" for p in patterns), _options(capture=False))
        self.which = re2.Set.FullMatchSet(_options(capture=False))
        self.starts = re2.Set.MatchSet(_options(capture=False))
        for pattern in patterns:
            self.which.Add(pattern)
            self.starts.Add(pattern)
        self.which.Compile()
        self.starts.Compile()
        self.each = tuple(re2.compile(p, _options(capture=True)) for p in patterns)

    def candidates(self, data: bytes, budget: Budget) -> Iterator[Candidate]:
        """Every candidate in `data`, in order (earlier rules win ties), while the budget lasts."""
        pos, endpos = 0, len(data)
        while pos < endpos:
            match = self.find.search(data, pos, endpos)
            if match is None or not budget.spend():
                return
            at, end = match.span()
            candidate = self._identify(data, at, end)
            # A pattern may consume the character after its secret, which the next one may need;
            # inside a generic value the scan goes on, to find the known format it may hold.
            resume = end if candidate is None else candidate.secret_end
            if candidate is not None and candidate.rule.nested:
                # One back: a format may need the separator before it (`=sk-ant-...`). A value too long
                # for its rule is searched only for a format at its start (a 1 KB JWT after `token:`):
                # rescanning all of it would let each key inside it cost the rest of the text again.
                too_long = candidate.secret_end - candidate.secret_start > candidate.rule.max_len
                if not too_long or self._format_at(data, candidate.at, candidate.end):
                    resume = candidate.secret_start - 1
            if candidate is not None and candidate.rule.user and candidate.secret_start - at > 24:
                resume = at + 1  # a user name long enough to be a token: `https://ghp_...:x@github.com`
            pos = max(resume, at + 1)
            if candidate is not None:
                yield candidate

    def _format_at(self, data: bytes, at: int, end: int) -> bool:
        """Whether a known format (no generic rule) opens the value of the match `data[at:end]`.

        The value starts after the last separator or quote in the match's head (a token holds none of
        them). The anchored set runs only while some format can still match, which a run of its
        alphabet bounds, and the window bounds the copy.
        """
        head = data[at : at + 64]
        start = at + max(head.rfind(c) for c in _VALUE_OPENERS) + 1
        if start == at:
            return False
        # Sliced at the value, `^` stands for the separator a format's pattern may consume before it.
        named = self.starts.Match(data[start : min(end, start + _FORMAT_WINDOW)])
        return named is not None and any(not self.rules[i].nested for i in named)

    def _identify(self, data: bytes, at: int, end: int) -> Candidate | None:
        """Which rule matched `data[at:end]`, and where its secret is."""
        if end - at > LONG_MATCH:
            long = self._identify_long(data, at, end)
            if long is not None:
                # A generic value too long for its rule is still returned: it is refused, and the scan
                # resumes inside it for the format it holds (a service account's 1 KB JWT after `token:`).
                keep = long.rule.block or long.rule.max_len > LONG_MATCH or long.rule.nested
                return long if keep else None
        # The set sees the candidate alone; each rule it names is then tried in its real context.
        indices = self.which.Match(data[at:end]) or range(len(self.rules))
        for index in sorted(indices):
            found = self.each[index].fullmatch(data, at, end)
            if found is None:
                continue
            for group in range(1, self.each[index].groups + 1):
                if found.start(group) >= 0:
                    return Candidate(self.rules[index], at, end, *found.span(group))
            return Candidate(self.rules[index], at, end, at, end)
        return None

    def _identify_long(self, data: bytes, at: int, end: int) -> Candidate | None:
        """A long match without another pass over all of it: its rule is told by how it starts.

        Locating a group would run RE2's slower NFA over the whole match, so a block is masked whole,
        a long token (a JWT) all but the separator its pattern may consume before it.
        """
        named = self.starts.Match(data[at : at + 256]) or self.which.Match(data[at:end])
        if not named:
            return None
        index = min(named)
        rule = self.rules[index]
        if rule.block:
            return Candidate(rule, at, end, at, end)
        # The secret starts where the rule's group does in the match's head (`aws_session_token=...`),
        # else after a separator its pattern consumed; it ends before one.
        start = at + (data[at] not in _WORD_BYTES)
        head = self.each[index].match(data, at, at + LONG_MATCH)
        if head is not None:
            start = next(
                (head.start(g) for g in range(1, self.each[index].groups + 1) if head.start(g) >= 0), start
            )
        return Candidate(rule, at, end, start, end - (end - 1 > start and data[end - 1] not in _TOKEN_BYTES))


RULES: tuple[Rule, ...] = (*FORMATS, *VENDOR_FORMATS, *KEYS, *CONTEXT)
"""Every rule, known formats first: where two match at the same position the earlier one wins."""
_ALL = Scanner(RULES)
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
    for candidate in _ALL.candidates(data, budget):
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
        line, line_start, at = 1, 0, 0
        for hit in _hits(item.text, policy, budget, policy.max_findings - len(findings)):
            if len(findings) >= policy.max_findings:
                return [*findings, _summary(policy, "credentials.more-findings", enforced)]
            # Counted from the previous hit, so many hits in one long line stay linear.
            line += item.text.count("\n", at, hit.start)
            line_start = max(line_start, item.text.rfind("\n", at, hit.start) + 1)
            at = hit.start
            findings.append(_finding(item, hit, line, hit.start - line_start + 1, policy.action, enforced))
        if budget.left < 0:
            return [*findings, _summary(policy, "credentials.scan-incomplete", enforced)]
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


def _summary(policy: CredentialsPolicy, rule_id: str, enforced: bool) -> Finding:
    """The finding that ends a scan early; a redact policy cannot mask what it did not find, so it denies."""
    severity: Severity = "high"
    if rule_id.endswith("more-findings"):
        message = (
            f"more than {policy.max_findings} credentials; only the first {policy.max_findings} are listed"
        )
    else:
        message = (
            f"the request holds more than {MAX_CANDIDATES} secret-like candidates; the scan stopped there"
        )
    return Finding(
        violation=Violation(
            policy=POLICY,
            rule_id=rule_id,
            severity=severity,
            location="request",
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


def scan(request: TaskRequest, limit: int = 20) -> list[Violation]:
    """The violations `check` finds with the default policy (the engine's interface before bundles)."""
    return [f.violation for f in check(request, CredentialsPolicy(max_findings=limit))]
