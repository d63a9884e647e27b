"""The licenses family: judge the licenses that context files declare against the bundle's lists.

Each declaration (see license_texts) is judged as a whole expression: under OR the licensee may pick
the most permissive option, under AND every part applies, and WITH an exception is judged by the pair
before the license alone (GPL WITH Classpath-exception-2.0 is not plain GPL). A license id meets the
bundle's deny, approve and allow lists of SPDX ids or globs; the most specific pattern wins, the
stricter list on a tie. What no list names is unknown, and a proprietary notice is its own action.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fnmatch import translate
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from license_expression import Licensing, get_spdx_licensing
from msgspec import Meta

from proto.v1 import Severity, TaskRequest, Violation
from services.guard.core.policies import Finding, Mode
from services.guard.core.policies.licenses.declarations import Declaration, find_declarations

POLICY = "licenses"
MAX_FINDINGS = 50
"""Findings reported per request, strictest first: one is enough to decide, all must fit in an event."""

LicenseAction = Literal["deny", "approve", "audit"]
"""What a finding asks for (a license cannot be masked, so there is no redact)."""
Outcome = Literal["allow", "audit", "approve", "deny"]
Kind = Literal["strong-copyleft", "source-available", "proprietary", "weak-copyleft", "permissive", "unknown"]
LicensePattern = Annotated[str, Meta(min_length=1, max_length=200)]
"""An SPDX id or a glob over ids (case-insensitive); with " WITH " it matches a license-exception pair."""

_V = TypeVar("_V")
_RANK: dict[Outcome, int] = {"allow": 0, "audit": 1, "approve": 2, "deny": 3}

DEFAULT_DENY: tuple[str, ...] = (
    "GPL-*",
    "AGPL-*",
    "SSPL-*",
    "BUSL-*",
    "Elastic-*",
    "*Commons-Clause*",
    "* WITH *Commons-Clause*",
    "CC-BY-NC-*",
    "PolyForm-*",
)
DEFAULT_APPROVE: tuple[str, ...] = (
    "LGPL-*",
    "MPL-*",
    "EPL-*",
    "CDDL-*",
    "* WITH Classpath-exception-2.0",
    "GPL-*-with-classpath-exception",
)
DEFAULT_ALLOW: tuple[str, ...] = (
    "MIT",
    "MIT-*",
    "Apache-2.0",
    "Apache-1.1",
    "BSD-*",
    "0BSD",
    "ISC",
    "Unlicense",
    "Zlib",
    "BSL-1.0",
    "CC0-1.0",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "PSF-2.0",
    "Python-2.0",
    "X11",
    "curl",
    "UPL-1.0",
    "BlueOak-1.0.0",
    "NCSA",
    "PostgreSQL",
    "Unicode-DFS-2016",
    "Unicode-3.0",
    "WTFPL",
)

# What kind of license an id is, for the rule id and the message; the bundle's lists decide the action.
_KINDS: tuple[tuple[str, Kind], ...] = (
    ("GPL-*", "strong-copyleft"),
    ("AGPL-*", "strong-copyleft"),
    ("GPL-*-with-classpath-exception", "weak-copyleft"),
    ("* WITH Classpath-exception-2.0", "weak-copyleft"),
    ("LGPL-*", "weak-copyleft"),
    ("MPL-*", "weak-copyleft"),
    ("EPL-*", "weak-copyleft"),
    ("CDDL-*", "weak-copyleft"),
    ("SSPL-*", "source-available"),
    ("BUSL-*", "source-available"),
    ("Elastic-*", "source-available"),
    ("*Commons-Clause*", "source-available"),
    ("* WITH *Commons-Clause*", "source-available"),
    ("CC-BY-NC-*", "source-available"),
    ("PolyForm-*", "source-available"),
    ("Proprietary", "proprietary"),
    ("LicenseRef-*Proprietary*", "proprietary"),
    ("LicenseRef-*Confidential*", "proprietary"),
    *((pattern, "permissive") for pattern in DEFAULT_ALLOW),
)


class LicensesPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a tenant treats the licenses of the files it hands to agents."""

    mode: Mode = "enforce"
    """audit reports what would happen without changing the verdict."""
    deny: tuple[LicensePattern, ...] = DEFAULT_DENY
    """Licenses that refuse the task: strong copyleft, source-available and field-of-use licenses."""
    approve: tuple[LicensePattern, ...] = DEFAULT_APPROVE
    """Licenses a human must accept: weak or file-level copyleft, GPL with the Classpath exception."""
    allow: tuple[LicensePattern, ...] = DEFAULT_ALLOW
    """Licenses that pass silently: the permissive ones."""
    unknown: LicenseAction = "approve"
    """For a license no list names, an unrecognised id, an unparsable expression or an unknown text."""
    proprietary: LicenseAction = "deny"
    """For a proprietary or confidential notice (or a LicenseRef-Proprietary id) that grants no rights."""


@dataclass(frozen=True)
class Judgement:
    """What one declared expression comes to, and which license decided it."""

    outcome: Outcome
    license: str
    kind: Kind
    rule: str
    """The rule id's last part: the kind, "unknown", or "restricted" (a permissive license a list names)."""


@dataclass(frozen=True)
class _Glob:
    """One compiled list entry."""

    regex: re.Pattern[str]
    with_exception: bool
    specificity: tuple[int, int, int]
    """(names an exception, exact id, literal characters): a license-exception entry beats any entry for the
    license alone, an exact id beats a glob, a longer glob a shorter one."""

    def matches(self, key: str, exception: str | None) -> bool:
        """Whether this entry names the license (a WITH entry: the license-exception pair)."""
        if self.with_exception:
            return exception is not None and self.regex.match(f"{key} WITH {exception}") is not None
        return self.regex.match(key) is not None


@dataclass(frozen=True)
class _Rules:
    """A policy compiled for matching; lists are in order deny, approve, allow so a tie goes stricter."""

    lists: tuple[tuple[_Glob, Outcome], ...]
    kinds: tuple[tuple[_Glob, Kind], ...]
    unknown: Outcome
    proprietary: Outcome


def check(request: TaskRequest, policy: LicensesPolicy) -> list[Finding]:
    """Findings for every context file that declares a license the policy does not allow."""
    rules = _rules(policy)
    findings: list[tuple[int, Finding]] = []
    for context in request.context:
        for declaration in find_declarations(context.path, context.content):
            judgement = _judge(declaration.expression, rules)
            if judgement.outcome != "allow":
                finding = _finding(context.path, declaration, judgement, policy.mode)
                findings.append((_RANK[judgement.outcome], finding))
    findings.sort(key=lambda ranked: -ranked[0])
    return [finding for _, finding in findings[:MAX_FINDINGS]]


def judge(expression: str, policy: LicensesPolicy) -> Judgement:
    """What a policy makes of one SPDX expression ("" stands for a proprietary notice)."""
    return _judge(expression, _rules(policy))


def _judge(expression: str, rules: _Rules) -> Judgement:
    if not expression:
        return Judgement(rules.proprietary, "a proprietary notice", "proprietary", "proprietary")
    licensing = _licensing()
    try:
        parsed = licensing.parse(" OR ".join(part.strip() for part in expression.split("/")), validate=False)
    except Exception:  # license-expression raises several types on malformed input; all mean "unknown"
        return Judgement(rules.unknown, expression, "unknown", "unknown")
    if parsed is None:
        return Judgement(rules.unknown, expression, "unknown", "unknown")
    return _judge_node(parsed, rules, licensing)


def _judge_node(node: Any, rules: _Rules, licensing: Licensing) -> Judgement:
    """OR: the most permissive choice; AND: the strictest part; a symbol: the lists."""
    operator = getattr(node, "operator", "").strip()
    if operator in ("AND", "OR"):
        parts = [_judge_node(arg, rules, licensing) for arg in node.args]
        pick = min if operator == "OR" else max
        return pick(parts, key=lambda j: _RANK[j.outcome])
    license_symbol = getattr(node, "license_symbol", node)
    exception_symbol = getattr(node, "exception_symbol", None)
    key = str(getattr(license_symbol, "key", license_symbol))
    exception = None if exception_symbol is None else str(getattr(exception_symbol, "key", exception_symbol))
    known = key in licensing.known_symbols
    return _judge_symbol(key, exception, known, rules)


def _judge_symbol(key: str, exception: str | None, known: bool, rules: _Rules) -> Judgement:
    """A single license (with its exception, if any) against the lists."""
    shown = key if exception is None else f"{key} WITH {exception}"
    kind = _most_specific(rules.kinds, key, exception)
    listed = _most_specific(rules.lists, key, exception)
    if listed is not None:
        kind = kind or ("permissive" if known else "unknown")
        rule = "restricted" if kind in ("permissive", "unknown") and listed != "allow" else kind
        return Judgement(listed, shown, kind, rule)
    if kind == "proprietary":
        return Judgement(rules.proprietary, shown, kind, kind)
    return Judgement(rules.unknown, shown, kind or "unknown", "unknown")


def _most_specific(entries: tuple[tuple[_Glob, _V], ...], key: str, exception: str | None) -> _V | None:
    """The value of the most specific entry that names a license; the earliest on a tie."""
    best: tuple[tuple[int, int, int], _V] | None = None
    for glob, value in entries:
        if (best is None or glob.specificity > best[0]) and glob.matches(key, exception):
            best = (glob.specificity, value)
    return None if best is None else best[1]


@functools.cache
def _licensing() -> Licensing:
    """The SPDX license index (built once: ~30 ms)."""
    return get_spdx_licensing()


@functools.lru_cache(maxsize=64)
def _rules(policy: LicensesPolicy) -> _Rules:
    """A policy's lists compiled once per bundle version (policies are frozen and hashable)."""
    ordered: tuple[tuple[Outcome, tuple[str, ...]], ...] = (
        ("deny", policy.deny),
        ("approve", policy.approve),
        ("allow", policy.allow),
    )
    return _Rules(
        lists=tuple((_glob(pattern), outcome) for outcome, patterns in ordered for pattern in patterns),
        kinds=tuple((_glob(pattern), kind) for pattern, kind in _KINDS),
        unknown=policy.unknown,
        proprietary=policy.proprietary,
    )


def _glob(pattern: str) -> _Glob:
    """A case-insensitive glob; " WITH " (any spacing or case) marks a license-exception pair."""
    words = pattern.split()
    with_exception = any(word.upper() == "WITH" for word in words)
    normal = " ".join("WITH" if word.upper() == "WITH" else word for word in words)
    literal = sum(1 for char in normal if char not in "*?[]")
    exact = not any(char in normal for char in "*?[")
    specificity = (int(with_exception), int(exact), literal)
    return _Glob(re.compile(translate(normal), re.IGNORECASE), with_exception, specificity)


_SEVERITY: dict[str, Severity] = {
    "strong-copyleft": "high",
    "source-available": "high",
    "proprietary": "high",
    "weak-copyleft": "medium",
    "restricted": "medium",
    "unknown": "low",
}
_WHY: dict[str, str] = {
    "strong-copyleft": "a strong copyleft license: derived work must be released under the same terms",
    "source-available": "a source-available or field-of-use license: it limits who may use it and for what",
    "proprietary": "a proprietary license that grants no right to use, copy or share the file",
    "weak-copyleft": "a weak (file-level) copyleft license: changes to these files must stay under it",
    "restricted": "a license this bundle's lists restrict",
    "unknown": "a license that is not recognised or that no list of the bundle names",
}
_FIX: dict[str, str] = {
    "strong-copyleft": "remove the file from the context or use a permissively licensed alternative",
    "source-available": "remove the file from the context unless your use is within its license's terms",
    "proprietary": "remove the file from the context, or get its owner's permission and allow it",
    "weak-copyleft": "have a human approve; keep modifications to these files under their license",
    "restricted": "remove the file from the context or change the bundle's license lists",
    "unknown": "add an SPDX-License-Identifier with a known license, or name it in the bundle's lists",
}


def _finding(path: str, declaration: Declaration, judgement: Judgement, mode: Mode) -> Finding:
    """A violation naming the license, the file and why it matters."""
    rule = judgement.rule
    expression = declaration.expression
    if not expression:
        message = f"{path} carries a proprietary notice, which grants no right to use, copy or share it"
    elif expression == "NOASSERTION":
        message = f"{path} holds a license text that was not recognised; a human must read its terms"
    elif judgement.license == expression:
        message = f"{path} declares {expression}, {_WHY[rule]}"
    else:
        message = f"{path} declares {expression!r}; it comes down to {judgement.license}, {_WHY[rule]}"
    # In audit mode the finding keeps the action it would take; enforced=False keeps it from the verdict.
    action: LicenseAction = "audit" if judgement.outcome == "allow" else judgement.outcome
    return Finding(
        violation=Violation(
            policy=POLICY,
            rule_id=f"{POLICY}.{rule}",
            severity=_SEVERITY[rule],
            location=f"context:{path}:{declaration.line}:{declaration.column}",
            evidence=declaration.evidence,
            message=message,
            fix=_FIX[rule],
            enforced=mode == "enforce",
        ),
        action=action,
    )
