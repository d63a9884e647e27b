"""Every license and exception on the SPDX list has a verdict, from its category; expressions combine them."""

from __future__ import annotations

import msgspec
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro.policy.bundle import load_default
from maestro.policy.policies.licenses import LicensesPolicy, judge
from maestro.policy.policies.licenses.categories import SCANCODE, index, lookup
from maestro.policy.policies.licenses.policy import CategoryActions

DEFAULT = LicensesPolicy()
ACTIONS = {
    "public-domain": "allow",
    "permissive": "allow",
    "weak-copyleft": "approve",
    "unknown": "approve",
    "strong-copyleft": "deny",
    "network-copyleft": "deny",
    "source-available": "deny",
    "proprietary": "deny",
}
LICENSES = sorted(
    {e.spdx for e in index().values() if not e.exception and not e.spdx.startswith("LicenseRef-")}
)
EXCEPTIONS = sorted(
    {e.spdx for e in index().values() if e.exception and not e.spdx.startswith("LicenseRef-")}
)


def test_the_index_holds_the_spdx_list() -> None:
    # SPDX 3.2x lists some 650 licenses and 70 exceptions; a license-expression without its data would not.
    assert len(LICENSES) > 600 and len(EXCEPTIONS) > 60
    assert {"MIT", "GPL-3.0-only", "BUSL-1.1", "Elastic-2.0", "SSPL-1.0", "CC-BY-NC-4.0"} <= set(LICENSES)
    assert {"Classpath-exception-2.0", "LLVM-exception", "GCC-exception-3.1"} <= set(EXCEPTIONS)


def test_every_license_on_the_list_gets_its_categorys_verdict() -> None:
    wrong = []
    for spdx in LICENSES:
        entry = lookup(spdx)
        assert entry is not None
        judged = judge(spdx, DEFAULT)
        if (judged.kind, judged.outcome) != (
            entry.category,
            ACTIONS[entry.category],
        ) or judged.license != spdx:
            wrong.append((spdx, judged))
    assert wrong == []


def test_only_licenses_scancode_leaves_open_are_unknown() -> None:
    unknown = {spdx for spdx in LICENSES if judge(spdx, DEFAULT).kind == "unknown"}
    open_categories = {k for k, v in SCANCODE.items() if v == "unknown"}
    raw = {e.spdx: e for e in index().values()}
    assert all(raw[spdx].category == "unknown" for spdx in unknown)
    assert len(unknown) < 20, (open_categories, sorted(unknown))


@pytest.mark.parametrize("exception", EXCEPTIONS)
def test_every_exception_on_the_list_is_judged_with_its_license(exception: str) -> None:
    judged = judge(f"GPL-2.0-or-later WITH {exception}", DEFAULT)
    assert judged.license == f"GPL-2.0-or-later WITH {exception}"
    assert judged.kind in ("weak-copyleft", "strong-copyleft")
    assert judge(f"MIT WITH {exception}", DEFAULT).kind == "permissive"


@pytest.mark.parametrize(
    ("deprecated", "current", "kind"),
    [
        ("GPL-2.0", "GPL-2.0-only", "strong-copyleft"),
        ("GPL-2.0+", "GPL-2.0-or-later", "strong-copyleft"),
        ("GPL-3.0", "GPL-3.0-only", "strong-copyleft"),
        ("LGPL-2.1", "LGPL-2.1-only", "weak-copyleft"),
        ("LGPL-3.0+", "LGPL-3.0-or-later", "weak-copyleft"),
        ("AGPL-3.0", "AGPL-3.0-only", "network-copyleft"),
        ("GFDL-1.3", "GFDL-1.3-only", "weak-copyleft"),
        ("GPL-2.0-with-classpath-exception", "GPL-2.0-with-classpath-exception", "weak-copyleft"),
        ("GPL-3.0-with-GCC-exception", "GPL-3.0-with-GCC-exception", "weak-copyleft"),
    ],
)
def test_deprecated_ids_are_resolved(deprecated: str, current: str, kind: str) -> None:
    judged = judge(deprecated, DEFAULT)
    assert (judged.license, judged.kind) == (current, kind)


@pytest.mark.parametrize(
    ("expression", "license", "outcome"),
    [
        ("MIT OR GPL-3.0-only", "MIT", "allow"),
        ("GPL-3.0-only OR LGPL-2.1-only", "LGPL-2.1-only", "approve"),
        ("AGPL-3.0-only OR BUSL-1.1", "AGPL-3.0-only", "deny"),
        ("MIT AND GPL-3.0-only", "GPL-3.0-only", "deny"),
        ("Apache-2.0 AND MPL-2.0", "MPL-2.0", "approve"),
        ("(MIT OR GPL-2.0-only) AND (BSD-3-Clause OR AGPL-3.0-only)", "MIT", "allow"),
        ("(MIT AND GPL-2.0-only) OR SSPL-1.0", "GPL-2.0-only", "deny"),
        ("GPL-2.0-only WITH Classpath-exception-2.0", "GPL-2.0-only WITH Classpath-exception-2.0", "approve"),
        ("GPL-3.0-or-later WITH GCC-exception-3.1", "GPL-3.0-or-later WITH GCC-exception-3.1", "approve"),
        ("Apache-2.0 WITH LLVM-exception", "Apache-2.0 WITH LLVM-exception", "allow"),
        ("Apache-2.0 WITH Commons-Clause", "Apache-2.0 WITH Commons-Clause", "deny"),
        ("GPL-2.0-only WITH Made-Up-exception", "GPL-2.0-only WITH Made-Up-exception", "deny"),
    ],
)
def test_or_takes_the_most_permissive_and_the_strictest_and_with_its_exception(
    expression: str, license: str, outcome: str
) -> None:
    judged = judge(expression, DEFAULT)
    assert (judged.license, judged.outcome) == (license, outcome)


def test_a_tenant_sets_each_categorys_action_and_lists_still_come_first() -> None:
    text = "categories: {weak-copyleft: deny, network-copyleft: approve}\nallow: [MPL-2.0]\n"
    policy = msgspec.convert(yaml.safe_load(text), LicensesPolicy)
    assert judge("LGPL-2.1-only", policy).outcome == "deny"
    assert judge("AGPL-3.0-only", policy).outcome == "approve"
    assert judge("MPL-2.0", policy).outcome == "allow"
    assert policy.categories.strong_copyleft == CategoryActions().strong_copyleft == "deny"
    with pytest.raises(msgspec.ValidationError, match="weak-copylft"):
        msgspec.convert({"categories": {"weak-copylft": "deny"}}, LicensesPolicy)


def test_the_shipped_bundle_names_the_category_actions() -> None:
    shipped = load_default().default.licenses
    assert shipped.categories == CategoryActions()
    assert (shipped.unknown, shipped.proprietary) == ("approve", "deny")


_TOKENS = st.sampled_from(
    [
        *(
            "MIT",
            "GPL-2.0",
            "gpl-3.0+",
            "Made-Up",
            "LicenseRef-x",
            "Classpath-exception-2.0",
            "LLVM-exception",
        ),
        *("AND", "OR", "WITH", "and", "with", "(", ")", "/", "+", ",", "-", "()", ""),
    ]
)


@settings(max_examples=400, deadline=None)
@given(tokens=st.lists(_TOKENS, max_size=12))
def test_any_expression_is_judged_without_raising(tokens: list[str]) -> None:
    judged = judge(" ".join(tokens), DEFAULT)
    assert judged.outcome in ("allow", "audit", "approve", "deny")


@pytest.mark.parametrize(
    ("expression", "kind"),
    [("Apache-2.0+", "permissive"), ("MPL-2.0+", "weak-copyleft"), ("EUPL-1.1+", "weak-copyleft")],
)
def test_an_or_later_plus_on_any_id_keeps_its_category(expression: str, kind: str) -> None:
    assert judge(expression, DEFAULT).kind == kind
