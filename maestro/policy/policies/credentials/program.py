"""The one RE2 program every credential rule runs in, and the candidates it finds.

Every rule (rules.py, vendors.py, context.py, in that order) is compiled three ways: one capture-free
program to find candidates (a DFA pass, linear in the text), a set to tell which rule a candidate
belongs to, and each rule alone to find its secret inside it. Python touches only candidates, and a
request gets a bounded number of those (Budget).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import re2

from maestro.policy.policies.credentials.context import CONTEXT
from maestro.policy.policies.credentials.rules import FORMATS, KEYS, Rule
from maestro.policy.policies.credentials.vendors import VENDOR_FORMATS

LONG_MATCH = 256
"""Matches longer than this are judged without locating their secret group (see Scanner)."""
_TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/=")
_VALUE_OPENERS = (b"=", b":", b">", b" ", b"\t", b'"', b"'", b"`")
_FORMAT_WINDOW = 16384
"""How far into a too-long generic value a known format is looked for (a JWT's own cap)."""
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _options(capture: bool) -> re2.Options:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.never_capture = not capture
    # Room for the DFA of every rule in one alternation, so RE2 never falls back to its NFA. A budget, not
    # an allocation; measured on bench.guard's corpus: at 64 MB some 70 KB requests fell back (42 ms each,
    # p99 of the scan 38 ms); at 256 MB p99 1.5 ms, the whole corpus 18x faster, for 30 MB more RSS.
    options.max_mem = 256 << 20
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


@functools.cache
def program() -> Scanner:
    """Every rule compiled, once per process, when first scanned with: compiling takes 120-190 ms, which
    every process importing the policy engine paid at start (the orchestrator, the agents, each CLI
    command), scanning or not."""
    return Scanner(RULES)
