"""A labelled case and how the engine is scored on a family's cases (precision, recall, F1)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from maestro import codec
from maestro.policy.bundle import Bundle, load_default
from maestro.policy.engine import evaluate
from proto.v1 import TaskRequest

Family = Literal["credentials", "commands", "licenses", "residency"]
FAMILIES: tuple[Family, ...] = ("credentials", "commands", "licenses", "residency")


@dataclass(frozen=True)
class Case:
    """One request, and whether the family must flag it.

    `kind` names what the case is an instance of (`aws-access-key`, `negative:published-example`, ...),
    so the figures can be read per kind; `source` names the specification or rule set it follows.
    """

    family: Family
    kind: str
    positive: bool
    request: TaskRequest
    source: str = ""
    bundle: Bundle | None = field(default=None, compare=False)
    """The bundle to judge by (residency pins, say); None: the shipped bundle."""


@functools.cache
def _shipped() -> Bundle:
    return load_default()


def flagged(case: Case, default: Bundle | None = None) -> bool:
    """Whether the engine flags the case for its family: an enforced violation of that family."""
    bundle = case.bundle or default or _shipped()
    judgement = evaluate(case.request, len(codec.encode(case.request)), bundle)
    return any(v.policy == case.family and v.enforced for v in judgement.decision.violations)


@dataclass(frozen=True)
class Score:
    """A family's confusion counts over its cases, and the cases it got wrong."""

    family: str
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    wrong: tuple[Case, ...] = ()

    @property
    def cases(self) -> int:
        return self.true_positives + self.false_positives + self.false_negatives + self.true_negatives

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(family: str, cases: Iterable[Case], verdicts: Sequence[bool] | None = None) -> Score:
    """Score `cases` by the engine (or by `verdicts`, one per case, from another scanner)."""
    items = list(cases)
    said = list(verdicts) if verdicts is not None else [flagged(c) for c in items]
    tp = fp = fn = tn = 0
    wrong: list[Case] = []
    for case, flag in zip(items, said, strict=True):
        if case.positive and flag:
            tp += 1
        elif case.positive:
            fn += 1
            wrong.append(case)
        elif flag:
            fp += 1
            wrong.append(case)
        else:
            tn += 1
    return Score(family, tp, fp, fn, tn, tuple(wrong))


def request(family: str, n: int, **fields: object) -> TaskRequest:
    """A request for a case: tenant `corpus`, role implementer unless given, a stable id."""
    body: dict[str, object] = {
        "id": f"{family[:4]}-{n}",
        "tenant": "corpus",
        "role": "implementer",
        "prompt": "",
    }
    body.update(fields)
    return msgspec.convert(body, TaskRequest)
