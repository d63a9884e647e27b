"""Bounded tenant labels: the first tenants keep their names, later ones are `other`, for good."""

from __future__ import annotations

import pytest

from maestro.tenant_labels import OTHER, TenantLabels


def test_the_first_tenants_keep_their_names_and_later_ones_are_other() -> None:
    label = TenantLabels(2)
    assert [label(t) for t in ("acme", "globex", "acme", "initech", "globex", "umbrella")] == [
        "acme",
        "globex",
        "acme",
        OTHER,
        "globex",
        OTHER,
    ]


def test_a_tenant_named_other_never_takes_a_place_of_its_own() -> None:
    label = TenantLabels(2)
    assert [label(t) for t in ("other", "acme", "globex", "initech")] == [OTHER, "acme", "globex", OTHER]


def test_no_room_names_none_and_a_negative_limit_is_refused() -> None:
    assert TenantLabels(0)("acme") == OTHER
    with pytest.raises(ValueError, match="0 or more"):
        TenantLabels(-1)
