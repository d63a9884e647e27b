"""Every SPDX license and exception in a category, from ScanCode's LicenseDB as license-expression ships it.

license-expression bundles ScanCode's license index (scancode-licensedb-index.json): each license key with
its SPDX id, the SPDX ids it replaces (deprecated ids such as GPL-2.0 for GPL-2.0-only, GPL-2.0+ for
GPL-2.0-or-later), whether it is an exception, and ScanCode's category. That index is the SPDX list the
family judges by, so a new license-expression release brings new ids and new categories with it.

ScanCode's categories map onto ours; one distinction ScanCode does not draw is made here: the copyleft
licenses whose terms reach network use (AGPL, OSL 3.0, RPL) are network copyleft. A few names that are not
SPDX ids (Commons Clause, the PolyForm family beyond SPDX's two, "Proprietary") have categories of their own.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal, get_args

import re2

Category = Literal[
    "public-domain",
    "permissive",
    "weak-copyleft",
    "unknown",
    "strong-copyleft",
    "network-copyleft",
    "source-available",
    "proprietary",
]
CATEGORIES: tuple[Category, ...] = get_args(Category)
"""From the most permissive to the most restrictive (the order Category names them in)."""

SCANCODE: dict[str, Category] = {
    "Public Domain": "public-domain",
    "Permissive": "permissive",
    "Copyleft Limited": "weak-copyleft",
    "Copyleft": "strong-copyleft",
    "Source-available": "source-available",
    # Field-of-use restrictions (no military, no nuclear, ethical-use clauses): they limit who may use it.
    "Free Restricted": "source-available",
    "Commercial": "proprietary",
    # Free to use but not open (terms of use, no-modification licenses, one OSI-approved): a human reads it.
    "Proprietary Free": "unknown",
    "Unstated License": "unknown",
    "Patent License": "unknown",
    "CLA": "unknown",
}
"""ScanCode's category (https://scancode-licensedb.aboutcode.org/help.html) -> ours."""

NETWORK_COPYLEFT = frozenset(
    {
        "AGPL-1.0-only",
        "AGPL-1.0-or-later",
        "AGPL-3.0-only",
        "AGPL-3.0-or-later",
        "OSL-3.0",  # section 5, "External Deployment"
        "NPOSL-3.0",
        "RPL-1.1",  # "Deploy" includes use by others over a network
        "RPL-1.5",
    }
)

# Names that are not on the SPDX list but mean one thing (first match wins).
_EXTRA: tuple[tuple[str, Category], ...] = (
    ("*Commons-Clause*", "source-available"),
    ("*PolyForm-*", "source-available"),
    ("*Elastic-License*", "source-available"),
    ("LicenseRef-*SSPL*", "source-available"),
    ("LicenseRef-*BUSL*", "source-available"),
    ("LicenseRef-*Source-Available*", "source-available"),
    ("Proprietary", "proprietary"),
    ("Commercial", "proprietary"),
    ("LicenseRef-*Proprietary*", "proprietary"),
    ("LicenseRef-*Confidential*", "proprietary"),
    ("LicenseRef-*Commercial*", "proprietary"),
    ("LicenseRef-*Public-Domain*", "public-domain"),
    ("Public-Domain", "public-domain"),
)


@dataclass(frozen=True)
class License:
    """One entry of the index: its SPDX id, its category, and whether it is an exception."""

    spdx: str
    category: Category
    exception: bool


def glob(pattern: str) -> re2._Regexp[str]:
    """A case-insensitive RE2 pattern for a glob over ids (`*`, `?`, and `[...]` classes)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        close = pattern.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif close > 0:
            body = pattern[i + 1 : close]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out.append("[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]")
            i = close
        else:
            out.append(re2.escape(char))
        i += 1
    return re2.compile("(?is)^(?:" + "".join(out) + ")$")


@functools.cache
def index() -> dict[str, License]:
    """Every id and deprecated id on the list, lower-cased, to its entry (built once: ~20 ms)."""
    data = resources.files("license_expression").joinpath("data/scancode-licensedb-index.json").read_text()
    entries: dict[str, License] = {}
    for item in json.loads(data):
        spdx = item.get("spdx_license_key")
        if not spdx:
            continue
        category = (
            "network-copyleft" if spdx in NETWORK_COPYLEFT else SCANCODE.get(item["category"], "unknown")
        )
        entry = License(spdx, category, bool(item["is_exception"]))
        for key in (spdx, *item.get("other_spdx_license_keys", ())):
            entries.setdefault(key.lower(), entry)
    return entries


@functools.cache
def _extras() -> tuple[tuple[re2._Regexp[str], Category], ...]:
    return tuple((glob(pattern), category) for pattern, category in _EXTRA)


def lookup(key: str) -> License | None:
    """The entry for an SPDX id (any case, deprecated ids included), or a name with a category of its own."""
    found = index().get(key.lower())
    if found is not None:
        return found
    if key.endswith("+") and len(key) > 1:
        return lookup(key[:-1])  # SPDX's "+" (this version or later) keeps the license's category
    for pattern, category in _extras():
        if pattern.match(key):
            return License(key, category, "Clause" in key)
    return None


def category_of(key: str, exception: str | None) -> Category:
    """The category of a license, with an exception if it has one.

    An exception that grants permissions (Classpath, GCC runtime, LLVM, syscall notes) turns strong or
    network copyleft into weak copyleft: the file stays under its license, what uses it does not. One that
    restricts (Commons Clause) makes the pair the stricter of the two. An unknown exception changes nothing.
    """
    found = lookup(key)
    category: Category = found.category if found is not None else "unknown"
    if exception is None:
        return category
    extra = lookup(exception)
    if extra is None:
        return category
    if extra.category in ("source-available", "proprietary"):
        return max(category, extra.category, key=CATEGORIES.index)
    if category in ("strong-copyleft", "network-copyleft") and extra.category in (
        "public-domain",
        "permissive",
        "weak-copyleft",
    ):
        return "weak-copyleft"
    return category
