"""The licenses family: judge the licenses that context files declare against the tenant's policy.

Each declaration (see declarations) is judged as a whole expression: under OR the licensee may pick the
most permissive option, under AND every part applies, and WITH an exception is judged by the pair (GPL WITH
Classpath-exception-2.0 is not plain GPL). A license is first looked up in the bundle's deny, approve and
allow lists of SPDX ids or globs (the most specific entry wins, the stricter list on a tie); a license no
list names gets its category's action (see categories: every id and exception on the SPDX list has one).
What is on no list and in no category is unknown, and a proprietary notice is its own action.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import re2
from boolean import ParseError
from license_expression import ExpressionError, Licensing, get_spdx_licensing
from msgspec import Meta

from maestro.policy.policies import Finding, Mode
from maestro.policy.policies.licenses.categories import CATEGORIES, Category, category_of, glob
from maestro.policy.policies.licenses.declarations import Declaration, find_declarations
from maestro.policy.policies.licenses.expressions import well_formed
from proto.v1 import Severity, TaskRequest, Violation

POLICY = "licenses"
MAX_FINDINGS = 50
"""Findings reported per request, strictest first: one is enough to decide, all must fit in an event."""

LicenseAction = Literal["deny", "approve", "audit"]
"""What a finding asks for (a license cannot be masked, so there is no redact)."""
Outcome = Literal["allow", "audit", "approve", "deny"]
Rule = Literal[Category, "restricted"]
LicensePattern = Annotated[str, Meta(min_length=1, max_length=200)]
"""An SPDX id or a glob over ids (case-insensitive); with " WITH " it matches a license-exception pair."""

_V = TypeVar("_V")
_RANK: dict[Outcome, int] = {"allow": 0, "audit": 1, "approve": 2, "deny": 3}


class CategoryActions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, rename="kebab"):
    """What each category of license asks for, unless a list names the license."""

    public_domain: Outcome = "allow"
    """Public-domain dedications (CC0-1.0, Unlicense, WTFPL)."""
    permissive: Outcome = "allow"
    """Permissive licenses (MIT, Apache-2.0, BSD-*, ISC, Zlib)."""
    weak_copyleft: Outcome = "approve"
    """File- or library-level copyleft (LGPL, MPL, EPL, CDDL); strong copyleft with a linking exception."""
    strong_copyleft: Outcome = "deny"
    """Derived work must be released under the same terms (GPL, EUPL-1.0, CC-BY-SA's kin are weak)."""
    network_copyleft: Outcome = "deny"
    """Copyleft that reaches users over a network (AGPL, OSL-3.0, RPL)."""
    source_available: Outcome = "deny"
    """Source-available, non-commercial, no-derivatives and field-of-use licenses (BUSL, SSPL, Elastic,
    PolyForm, Commons Clause, CC-BY-NC, CC-BY-ND, Hippocratic)."""


class LicensesPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How a tenant treats the licenses of the files it hands to agents."""

    mode: Mode = "enforce"
    """audit reports what would happen without changing the verdict."""
    categories: CategoryActions = CategoryActions()
    """What each category of license asks for."""
    deny: tuple[LicensePattern, ...] = ()
    """Licenses that refuse the task whatever their category."""
    approve: tuple[LicensePattern, ...] = ()
    """Licenses a human must accept whatever their category."""
    allow: tuple[LicensePattern, ...] = ()
    """Licenses that pass silently whatever their category."""
    unknown: LicenseAction = "approve"
    """For a license no list names and no category holds, an unparsable expression or an unknown text."""
    proprietary: LicenseAction = "deny"
    """For a proprietary or confidential notice (or a LicenseRef-Proprietary id) that grants no rights."""


@dataclass(frozen=True)
class Judgement:
    """What one declared expression comes to, and which license decided it."""

    outcome: Outcome
    license: str
    kind: Category
    rule: Rule
    """The rule id's last part: the category, or "restricted" (a list is stricter than a lenient category)."""


@dataclass(frozen=True)
class _Glob:
    """One compiled list entry."""

    regex: re2._Regexp[str]
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
    categories: dict[Category, Outcome]


def check(request: TaskRequest, policy: LicensesPolicy) -> list[Finding]:
    """Findings for every context file that declares a license the policy does not allow."""
    return check_files([(c.path, c.content) for c in request.context], policy)


def check_files(
    files: list[tuple[str, str]], policy: LicensesPolicy, where: str = "context"
) -> list[Finding]:
    """Findings for every (path, content) that declares a license the policy does not allow, strictest
    first; each is located `<where>:<path>:<line>:<column>`."""
    rules = _rules(policy)
    findings: list[tuple[int, Finding]] = []
    for path, content in files:
        for declaration in find_declarations(path, content):
            judgement = _judge(declaration.expression, rules)
            if judgement.outcome != "allow":
                finding = _finding(f"{where}:{path}", path, declaration, judgement, policy.mode)
                findings.append((_RANK[judgement.outcome], finding))
    findings.sort(key=lambda ranked: -ranked[0])
    return [finding for _, finding in findings[:MAX_FINDINGS]]


def judge(expression: str, policy: LicensesPolicy) -> Judgement:
    """What a policy makes of one SPDX expression ("" stands for a proprietary notice)."""
    return _judge(expression, _rules(policy))


def _judge(expression: str, rules: _Rules) -> Judgement:
    if not expression:
        return Judgement(
            rules.categories["proprietary"], "a proprietary notice", "proprietary", "proprietary"
        )
    unknown = Judgement(rules.categories["unknown"], expression, "unknown", "unknown")
    joined = " OR ".join(part.strip() for part in expression.split("/"))
    if not well_formed(joined):
        return unknown
    try:
        parsed = _licensing().parse(joined, validate=False)
    except (ExpressionError, ParseError):  # what license-expression raises on a malformed expression
        return unknown
    return unknown if parsed is None else _judge_node(parsed, rules)


def _judge_node(node: Any, rules: _Rules) -> Judgement:
    """OR: the most permissive choice; AND: the strictest part; a symbol: the lists, then its category."""
    operator = getattr(node, "operator", "").strip()
    if operator in ("AND", "OR"):
        parts = [_judge_node(arg, rules) for arg in node.args]
        pick = min if operator == "OR" else max
        return pick(parts, key=lambda j: (_RANK[j.outcome], _CATEGORY_RANK[j.kind]))
    license_symbol = getattr(node, "license_symbol", node)
    exception_symbol = getattr(node, "exception_symbol", None)
    key = str(getattr(license_symbol, "key", license_symbol))
    exception = None if exception_symbol is None else str(getattr(exception_symbol, "key", exception_symbol))
    return _judge_symbol(key, exception, rules)


def _judge_symbol(key: str, exception: str | None, rules: _Rules) -> Judgement:
    """A single license (with its exception, if any): a list that names it, else its category."""
    shown = key if exception is None else f"{key} WITH {exception}"
    category = category_of(key, exception)
    by_category = rules.categories[category]
    listed = _most_specific(rules.lists, key, exception)
    if listed is None:
        return Judgement(by_category, shown, category, category)
    lenient = category in ("public-domain", "permissive", "unknown")
    rule: Rule = "restricted" if lenient and _RANK[listed] > _RANK[by_category] else category
    return Judgement(listed, shown, category, rule)


def _most_specific(entries: tuple[tuple[_Glob, _V], ...], key: str, exception: str | None) -> _V | None:
    """The value of the most specific entry that names a license; the earliest on a tie."""
    best: tuple[tuple[int, int, int], _V] | None = None
    for entry, value in entries:
        if (best is None or entry.specificity > best[0]) and entry.matches(key, exception):
            best = (entry.specificity, value)
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
    actions = policy.categories
    return _Rules(
        lists=tuple((_glob(pattern), outcome) for outcome, patterns in ordered for pattern in patterns),
        categories={
            "public-domain": actions.public_domain,
            "permissive": actions.permissive,
            "weak-copyleft": actions.weak_copyleft,
            "unknown": policy.unknown,
            "strong-copyleft": actions.strong_copyleft,
            "network-copyleft": actions.network_copyleft,
            "source-available": actions.source_available,
            "proprietary": policy.proprietary,
        },
    )


def _glob(pattern: str) -> _Glob:
    """A case-insensitive glob; " WITH " (any spacing or case) marks a license-exception pair."""
    words = pattern.split()
    with_exception = any(word.upper() == "WITH" for word in words)
    normal = " ".join("WITH" if word.upper() == "WITH" else word for word in words)
    literal = sum(1 for char in normal if char not in "*?[]")
    exact = not any(char in normal for char in "*?[")
    specificity = (int(with_exception), int(exact), literal)
    return _Glob(glob(normal), with_exception, specificity)


_CATEGORY_RANK = {category: rank for rank, category in enumerate(CATEGORIES)}
_SEVERITY: dict[str, Severity] = {
    "public-domain": "low",
    "permissive": "low",
    "network-copyleft": "high",
    "strong-copyleft": "high",
    "source-available": "high",
    "proprietary": "high",
    "weak-copyleft": "medium",
    "restricted": "medium",
    "unknown": "low",
}
_WHY: dict[str, str] = {
    "public-domain": "a public-domain dedication this bundle does not allow",
    "permissive": "a permissive license this bundle does not allow",
    "network-copyleft": "a network copyleft license: serving it over a network obliges you to share source",
    "strong-copyleft": "a strong copyleft license: derived work must be released under the same terms",
    "source-available": "a source-available or field-of-use license: it limits who may use it and for what",
    "proprietary": "a proprietary license that grants no right to use, copy or share the file",
    "weak-copyleft": "a weak (file-level) copyleft license: changes to these files must stay under it",
    "restricted": "a license this bundle's lists restrict",
    "unknown": "a license that is not recognised or that no list of the bundle names",
}
_FIX: dict[str, str] = {
    "public-domain": "remove the file from the context or allow the license in the bundle",
    "permissive": "remove the file from the context or allow the license in the bundle",
    "network-copyleft": "remove the file from the context or use a permissively licensed alternative",
    "strong-copyleft": "remove the file from the context or use a permissively licensed alternative",
    "source-available": "remove the file from the context unless your use is within its license's terms",
    "proprietary": "remove the file from the context, or get its owner's permission and allow it",
    "weak-copyleft": "have a human approve; keep modifications to these files under their license",
    "restricted": "remove the file from the context or change the bundle's license lists",
    "unknown": "add an SPDX-License-Identifier with a known license, or name it in the bundle's lists",
}


def _finding(where: str, path: str, declaration: Declaration, judgement: Judgement, mode: Mode) -> Finding:
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
            location=f"{where}:{declaration.line}:{declaration.column}",
            evidence=declaration.evidence,
            message=message,
            fix=_FIX[rule],
            enforced=mode == "enforce",
        ),
        action=action,
    )
