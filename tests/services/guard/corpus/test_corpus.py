"""The engine on its own labelled corpus: each family at precision >= 0.97 and recall >= 0.95."""

from __future__ import annotations

import importlib

import pytest

from tests.services.guard.corpus.case import FAMILIES, Case, score

PRECISION = 0.97
RECALL = 0.95


def cases_of(family: str) -> list[Case]:
    try:
        module = importlib.import_module(f"tests.services.guard.corpus.{family}")
    except ModuleNotFoundError:
        return []
    return list(module.CASES)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_family_meets_its_targets_on_the_corpus(family: str) -> None:
    cases = cases_of(family)
    if not cases:
        pytest.skip(f"no corpus for {family} yet")
    assert all(c.family == family for c in cases)
    assert any(c.positive for c in cases) and any(not c.positive for c in cases)
    result = score(family, cases)
    missed = [f"{c.kind}: {c.request.id}" for c in result.wrong][:20]
    assert result.precision >= PRECISION and result.recall >= RECALL, (result, missed)


def test_ids_are_unique_across_the_corpus() -> None:
    ids = [c.request.id for family in FAMILIES for c in cases_of(family)]
    assert len(ids) == len(set(ids))
