"""License names as SPDX ids: the names the text patterns match, and the values manifests hold.

A full text's rule or a header's license name (texts) comes to an id by its groups; a manifest's value
comes to an expression through its ecosystem's conventions (Trove classifiers, R's `GPL (>= 2)` and `|`,
npm's `UNLICENSED`, RPM's `and`/`or`), each part looked up on the SPDX list (categories) or read as a name.
"""

from __future__ import annotations

from collections.abc import Callable

import re2

from maestro.policy.policies.licenses.categories import lookup
from maestro.policy.policies.licenses.texts import NAME_ONLY

_TEXT_IDS: dict[str, str] = {
    "apache_title": "Apache-2.0",
    "cddl_title": "CDDL-1.0",
    "sspl_title": "SSPL-1.0",
    "busl_title": "BUSL-1.1",
    "busl_mark": "BUSL-1.1",
    "commons_with": "LicenseRef-Commons-Clause",
    "elastic_title": "Elastic-2.0",
    "commons_title": "LicenseRef-Commons-Clause",
    "commons_body": "LicenseRef-Commons-Clause",
    "cc0_title": "CC0-1.0",
    "mit_title": "MIT",
    "mit_body": "MIT",
    "isc_body": "ISC",
    "unlicense_body": "Unlicense",
    "zlib_body": "Zlib",
    "boost_title": "BSL-1.0",
    "wtfpl_title": "WTFPL",
    "psf_title": "PSF-2.0",
}

_POINTER = re2.compile(
    r"(?i)^(?:see licen[cs]e in\b|file licen[cs]e|licen[cs]e[._ -]?file\b|file:"
    r"|(?:[\w.-]*/)*(?:licen[cs]e|copying)(?:[._-][\w.-]+)?$)"
)
_PROPRIETARY = frozenset(
    {
        "unlicensed",
        "proprietary",
        "commercial",
        "other/proprietary license",
        "all rights reserved",
        "closed source",
        "closed-source",
        "private",
        "restricted",
    }
)
_ID_TOKEN = re2.compile(r"^[A-Za-z0-9][A-Za-z0-9.+:_-]*$")
_SPLIT = re2.compile(r"(?i)\s+(and|or)\s+|\s*([|/;])\s*|\s*(\+)\s*file\s+licen[cs]e\S*")
_R_GNU = re2.compile(r"(?i)^(A|L)?GPL(?:-([23](?:\.[01])?)|\s*\(\s*>=\s*([23](?:\.[01])?)\s*\))?$")
_R_NAMES = {
    "mit": "MIT",
    "bsd_2_clause": "BSD-2-Clause",
    "bsd_3_clause": "BSD-3-Clause",
    "cc0": "CC0-1.0",
    "unlimited": "LicenseRef-Public-Domain",
    "public domain": "LicenseRef-Public-Domain",
    "lgpl": "LGPL-2.0-or-later",
    "gpl": "GPL-2.0-or-later",
}
_DUAL = re2.compile(r"(?i)^(?:dual[- ]licen[cs]ed|dual)(?: under)?:?\s+")
_OR_LATER = re2.compile(
    r"(?i)\s*(?:,\s*)?\bor\s+(?:\(at your option\)\s+)?(?:any\s+)?(?:later|newer|greater)(?:\s+version)?"
)
_COMMON = {
    # Short names package authors write that neither the list nor the patterns hold.
    "psf": "PSF-2.0",
    "boost": "BSL-1.0",
    "artistic": "Artistic-1.0",
    "perl": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "same as perl": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "same terms as perl itself": "Artistic-1.0-Perl OR GPL-1.0-or-later",
}
_CPAN_NAMES = {
    # CPAN::Meta::Spec's license strings.
    "perl_5": "Artistic-1.0-Perl OR GPL-1.0-or-later",
    "agpl_3": "AGPL-3.0-only",
    "apache_1_1": "Apache-1.1",
    "apache_2_0": "Apache-2.0",
    "artistic_1": "Artistic-1.0",
    "artistic_2": "Artistic-2.0",
    "bsd": "BSD-3-Clause",
    "freebsd": "BSD-2-Clause",
    "gfdl_1_3": "GFDL-1.3-or-later",
    "gpl_1": "GPL-1.0-only",
    "gpl_2": "GPL-2.0-only",
    "gpl_3": "GPL-3.0-only",
    "lgpl_2_1": "LGPL-2.1-only",
    "lgpl_3_0": "LGPL-3.0-only",
    "mit": "MIT",
    "mozilla_1_1": "MPL-1.1",
    "mozilla_2_0": "MPL-2.0",
    "openssl": "OpenSSL",
    "qpl_1_0": "QPL-1.0",
    "zlib": "Zlib",
    "restricted": "LicenseRef-Proprietary",
}
_TROVE_NAMES = {
    "bsd license": "BSD-3-Clause",
    "python software foundation license": "PSF-2.0",
    "public domain": "LicenseRef-Public-Domain",
    "isc license (iscl)": "ISC",
    "the unlicense (unlicense)": "Unlicense",
    "artistic license": "Artistic-2.0",
    "academic free license (afl)": "AFL-3.0",
    "zope public license": "ZPL-2.1",
    "historical permission notice and disclaimer (hpnd)": "HPND",
    "universal permissive license (upl)": "UPL-1.0",
    "w3c license": "W3C",
    "european union public licence 1.2 (eupl 1.2)": "EUPL-1.2",
    "european union public licence 1.1 (eupl 1.1)": "EUPL-1.1",
    "gnu free documentation license (fdl)": "GFDL-1.3-or-later",
    "gnu library or lesser general public license (lgpl)": "LGPL-2.0-or-later",
}


def text_to_spdx(key: str, group: Callable[[str], str | None], region: str) -> str:
    """The SPDX id a full-text rule (TEXT_RULES key) names, from its groups."""
    if key == "gnu_title":
        return _gnu(group("tg"), group("tgv"), later=False)
    if key == "mpl_title":
        return f"MPL-{group('tmv') or '2.0'}"
    if key == "epl_title":
        return f"EPL-{group('tev') or '2.0'}"
    if key == "cc_title":
        return _cc(group("tcc") or "", group("tccv"))
    if key == "bsd_body":
        return _bsd(region)
    if key == "polyform_title":
        return _polyform(group("tpf"))
    return _TEXT_IDS[key]


# Long names whose id is a prefix and a version: (lower-case start, id template, version group, default).
_NAMED = (
    ("gnu free documentation", "GFDL-{}-only", "fdlv", "1.3"),
    ("artistic", "Artistic-{}", "artv", "1.0"),
    ("european union public", "EUPL-{}", "euplv", "1.2"),
    ("open software", "OSL-{}", "oslv", "3.0"),
    ("academic free", "AFL-{}", "aflv", "3.0"),
)


def name_to_spdx(group: Callable[[str], str | None]) -> str | None:
    """The SPDX id of a license name matched by _NAME; None for a word that is no license id."""
    word = group("id")
    found = None if word is None else lookup(word.rstrip(".+"))
    if found is not None:  # checked first: "BSL-1.0" is Boost's id, not a Business Source name
        return found.spdx
    name = " ".join((group("name") or "").split())
    lowered = name.lower()
    if "general public" in lowered:
        return _gnu(group("gnu"), group("gnuv"), later=group("gnul") is not None)
    if "gpl" in lowered and "sspl" not in lowered:
        short = (group("gs") or "").upper()
        family = {"A": "AFFERO ", "L": "LESSER "}.get(short)
        return _gnu(family, group("gsv"), later=group("gsl") is not None)
    if lowered.startswith("apache") or lowered.startswith("asl"):
        return f"Apache-{group('apv') or '2.0'}"
    if lowered.startswith(("mozilla", "mpl")):
        return f"MPL-{group('mplv') or group('mplv2') or '2.0'}"
    if lowered.startswith(("eclipse", "epl")):
        return f"EPL-{group('eplv') or group('eplv2') or '2.0'}"
    if lowered.startswith(("common development", "cddl")):
        return "CDDL-1.0"
    if lowered.startswith(("server side", "sspl")):
        return "SSPL-1.0"
    if lowered.startswith(("business source", "busl", "bsl")):
        return "BUSL-1.1"
    if lowered.startswith(("elastic", "elv2")):
        return "Elastic-2.0"
    if lowered.startswith("commons clause"):
        return "LicenseRef-Commons-Clause"
    if group("cc") is not None:
        return _cc(group("cc") or "", group("ccv"))
    if lowered.startswith("cc-by") or lowered.startswith("cc by"):
        return _cc(group("ccs") or "", group("ccsv"))
    if lowered.startswith(("cc0", "creative commons zero")):
        return "CC0-1.0"
    if group("pf") is not None or group("pf2") is not None:
        return _polyform(group("pf") or group("pf2"))
    if group("closed") is not None:
        return "LicenseRef-Proprietary"
    if group("community") is not None:
        return "LicenseRef-Source-Available"
    if lowered.startswith("boost"):
        return "BSL-1.0"
    for prefix, spdx, versioned, default in _NAMED:
        if lowered.lstrip('"').startswith(prefix):
            version = group(versioned)
            return spdx.format(version or default)
    if lowered.startswith("zlib"):
        return "Zlib"
    if "unlicense" in lowered:
        return "Unlicense"
    if "bsd" in lowered:
        number = group("bsdn")
        # A bare "BSD-style license" most often means the 3-clause one (Go, Chromium).
        return "0BSD" if number == "0" else f"BSD-{number or 3}-Clause"
    if lowered.startswith("isc"):
        return "ISC"
    return None if word is not None else "MIT"  # a word that is no license names none


def _polyform(name: str | None) -> str:
    """A PolyForm license's id: SPDX lists two, the others are named the same way."""
    return f"PolyForm-{'-'.join((name or 'Noncommercial').replace('-', ' ').title().split())}-1.0.0"


def _gnu(family: str | None, version: str | None, later: bool) -> str:
    """GPL, LGPL or AGPL with its version; no version means any version, so "-or-later" of the first."""
    kind = (family or "").strip().upper()
    prefix = {"AFFERO": "AGPL", "LESSER": "LGPL", "LIBRARY": "LGPL"}.get(kind, "GPL")
    if version is None:
        first = {"AGPL": "3.0", "LGPL": "2.0", "GPL": "1.0"}[prefix]
        return f"{prefix}-{first}-or-later"
    version = version if "." in version else f"{version}.0"
    return f"{prefix}-{version}-{'or-later' if later else 'only'}"


def _cc(variant: str, version: str | None) -> str:
    """A Creative Commons id from "Attribution-NonCommercial-ShareAlike" or "-NC-SA"."""
    parts = ["CC-BY"]
    lowered = variant.lower()
    if "noncommercial" in lowered or "non-commercial" in lowered or "-nc" in lowered:
        parts.append("NC")
    if "noderiv" in lowered or "-nd" in lowered:
        parts.append("ND")
    if "sharealike" in lowered or "-sa" in lowered:
        parts.append("SA")
    parts.append(version or "4.0")
    return "-".join(parts)


def _bsd(region: str) -> str:
    """Which BSD license a text is, by its clauses."""
    lowered = region.lower()
    if "advertising materials" in lowered:
        return "BSD-4-Clause"
    if "neither the name" in lowered or "endorse or promote" in lowered:
        return "BSD-3-Clause"
    return "BSD-2-Clause"


def spdx(value: str) -> str | None:
    """An SPDX expression for an ecosystem's license value; "" for proprietary; None for a pointer."""
    value = " ".join(value.strip().strip("\"'").split())
    if not value or _POINTER.search(value):
        return None
    value = _OR_LATER.sub("+", _DUAL.sub("", value))
    lowered = value.lower()
    if lowered in _PROPRIETARY:
        return ""
    if lowered.startswith("license ::"):
        return _trove(value)
    if all(_ID_TOKEN.match(t) for t in value.replace("(", " ").replace(")", " ").split()):
        tokens = [t for t in value.replace("(", " ").replace(")", " ").split()]
        operands = [t for t in tokens if t.upper() not in ("AND", "OR", "WITH")]
        if operands and all(lookup(t.rstrip("+")) is not None for t in operands):
            return value
    parts: list[str] = []
    position = 0
    for match in _SPLIT.finditer(value):
        parts.append(_name(value[position : match.start()]))
        if match.group(3) is None:
            operator = (match.group(1) or match.group(2) or "").lower()
            parts.append("AND" if operator == "and" else "OR")
        position = match.end()
    parts.append(_name(value[position:]))
    joined = " ".join(p for p in parts if p).strip()
    for dangling in ("OR", "AND"):
        joined = joined.removeprefix(dangling + " ").removesuffix(" " + dangling)
    return joined or value


def _name(part: str) -> str:
    """One license name (an id, an R or Trove name, a long name) as an SPDX id; unknown names stay."""
    part = part.strip().strip("\"'").strip()
    if part.startswith("(") and part.endswith(")"):
        part = part[1:-1].strip()
    if not part:
        return ""
    if _POINTER.search(part) or part.lower() in ("file", "file license"):
        return ""
    if part.lower() in _PROPRIETARY:
        return "LicenseRef-Proprietary"
    found = lookup(part)
    if found is not None:
        return found.spdx
    r_gnu = _R_GNU.match(part)
    if r_gnu:
        prefix = (r_gnu.group(1) or "").upper() + "GPL"
        version = r_gnu.group(2) or r_gnu.group(3)
        if version is None:
            return _R_NAMES[prefix.lower()] if prefix != "AGPL" else "AGPL-3.0-or-later"
        version = version if "." in version else f"{version}.0"
        return f"{prefix}-{version}-{'only' if r_gnu.group(2) else 'or-later'}"
    lowered = part.lower()
    known = (
        _R_NAMES.get(lowered) or _TROVE_NAMES.get(lowered) or _CPAN_NAMES.get(lowered) or _COMMON.get(lowered)
    )
    if known:
        return known
    named = NAME_ONLY.match(part)
    if named:
        return name_to_spdx(named.group) or part.replace(" ", "-")
    return part.replace(" ", "-")


def _trove(classifier: str) -> str:
    """A Trove classifier ("License :: OSI Approved :: MIT License") as an SPDX id."""
    last = classifier.split("::")[-1].strip()
    if last.lower() == "other/proprietary license":
        return ""
    named = _TROVE_NAMES.get(last.lower())
    if named:
        return named
    short = _TROVE_SHORT.search(last)
    if short:
        found = lookup(short.group(1).replace(" ", "-"))
        if found is not None:
            return found.spdx
    return _name(last)


def known(expression: str) -> bool:
    """Whether every license in an expression is on the list, has a category, or is an SPDX LicenseRef."""
    words = expression.replace("(", " ").replace(")", " ").split()
    return all(
        lookup(w) is not None or w.startswith(("LicenseRef-", "DocumentRef-"))
        for w in words
        if w.upper() not in ("AND", "OR", "WITH")
    )


_TROVE_SHORT = re2.compile(r"\(([A-Za-z][\w.+ -]{0,30})\)$")
"""A classifier's short name in parentheses: "Mozilla Public License 2.0 (MPL 2.0)"."""
_TITLE_WORD = re2.compile(r"[A-Za-z][A-Za-z0-9+]*(?:[.-][A-Za-z0-9+]+)*")
_TITLE_VERSION = re2.compile(r"\b[vV]?(\d+(?:\.\d+)*)\b")


def title_to_spdx(title: str) -> str | None:
    """The id a license's title holds: "(UPL), Version 1.0" is UPL-1.0, "PostgreSQL Licence" PostgreSQL.

    Only a title that says it is a license counts, so a first line that merely starts with a word that is
    also an id ("Fair use of ...") names nothing.
    """
    if "licen" not in title.lower():
        return None
    version = _TITLE_VERSION.search(title)
    for match in _TITLE_WORD.finditer(title):
        word = match.group()
        if word.lower() in ("license", "licence", "the", "version", "open", "source", "public", "free"):
            continue
        for candidate in ((f"{word}-{version.group(1)}",) if version else ()) + (word,):
            found = lookup(candidate)
            if found is not None and not found.exception:
                return found.spdx
    return None
