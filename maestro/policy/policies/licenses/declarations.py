"""Find license declarations in a file's text: SPDX tags, license headers, full license texts, notices.

A declaration is what a file says about its own license, not every mention of a license name: an SPDX
tag must be the tag itself at the start of a (comment) line; a header must grant the license ("This
program is free software; you can redistribute it ... under the terms of the GNU General Public
License") within the first lines of the file; a full text is recognised by its title or its operative
sentence. Package metadata, dependency inventories and JSON are never declarations, and prose documents
(README, docs) declare only through a tag or a full text, so a README explaining a license choice is not
one. Every scan is a google-re2 pattern (linear time) over a bounded stretch of the text.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

import re2

from maestro.policy.policies.licenses.expressions import expression_prefix
from maestro.policy.policies.licenses.manifests import is_manifest, license_fields
from maestro.policy.policies.licenses.names import known, name_to_spdx, spdx, text_to_spdx, title_to_spdx
from maestro.policy.policies.licenses.texts import (
    EXCEPTION,
    EXCEPTION_RULES,
    FENCE,
    FIELD_LINE,
    GNU_ID,
    GRANT,
    GRANT_LEADS,
    KEYWORDS,
    NAME_ONLY,
    NOT_A_GRANT,
    NOTICE,
    SPDX_TAG,
    SUBJECT_LEADS,
    TAG_END,
    TEXT,
    TEXT_RULES,
)

Source = Literal["spdx", "header", "text", "notice", "manifest"]
FileKind = Literal["skip", "manifest", "license", "doc", "code"]

HEADER_LINES = 60
"""Headers are looked for in this many lines at the top of a file."""
HEADER_CHARS = 8192
"""...and in at most this many characters (a minified file is one huge line)."""
LICENSE_FILE_CHARS = 256 * 1024
"""A LICENSE/COPYING file is read whole up to this size; the longest common license texts are ~35 KB."""
MAX_TAG_CHARS = 300
"""An SPDX expression longer than this is not parsed (it is judged unknown)."""
TITLE_CHARS = 200
"""A license file's title is looked for in this many characters at its top..."""
TITLE_LINES = 3
"""...and an id in its title in this many lines."""
MAX_PER_FILE = 20
"""Distinct declarations reported per file."""
MAX_MATCHES = 1000
"""Matches examined per scan of a file: a file repeating a tag 100,000 times costs no more than this."""
EVIDENCE_CHARS = 120


@dataclass(frozen=True)
class Declaration:
    """A license a file declares: an SPDX expression ("" for a proprietary notice) and where it says so."""

    expression: str
    line: int
    column: int
    evidence: str
    source: Source


# Files that list dependencies' licenses or record installed ones: their license names are data, not grants.
# (A package's own manifest is read for its license field: see manifests.)
_SKIP_NAMES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "composer.lock",
        "cargo.lock",
        "pkg-info",
        "metadata",
        "pipfile",
        "pipfile.lock",
        "poetry.lock",
        "uv.lock",
        "go.mod",
        "go.sum",
        "gemfile",
        "gemfile.lock",
        "deny.toml",
        "about.toml",
        "clearlydefined.yaml",
        "copyright",
        "dep5",
    }
)
_SKIP_SUFFIXES = (".json", ".jsonl", ".lock", ".gemspec", ".nuspec", ".podspec", ".cabal", ".spdx", ".sarif")
_SKIP_NAME_PATTERN = re2.compile(
    r"(?i)third[-_ ]?party|notices?\b|credits|attributions?|dependencies|licenses\.|requirements.*\.txt$"
)
_SEMICOLONS = re2.compile(r"(?m)^[ \t]*;+")
_LICENSE_NAME_PATTERN = re2.compile(
    r"(?i)^(?:un)?licen[cs]e(?:[-_.].*)?$|^copying(?:[-_.].*)?$|\.licen[cs]e$|^eula(?:[-_.].*)?$"
)
_CODE_SUFFIXES = (
    ".py",
    ".pyi",
    ".js",
    ".mjs",
    ".cjs",
    ".ts",
    ".tsx",
    ".jsx",
    ".go",
    ".rs",
    ".java",
    ".kt",
    ".scala",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".hpp",
    ".cs",
    ".rb",
    ".php",
    ".sh",
    ".bash",
    ".zsh",
    ".pl",
    ".lua",
    ".swift",
    ".m",
    ".r",
    ".jl",
    ".ex",
    ".exs",
    ".erl",
    ".hs",
    ".ml",
    ".clj",
    ".dart",
    ".sql",
)
_DOC_SUFFIXES = (".md", ".markdown", ".rst", ".adoc", ".asciidoc", ".txt", ".org", ".html", ".htm", ".tex")


def file_kind(path: str) -> FileKind:
    """How a file is read: skipped (metadata, inventories), whole (license files), as prose, or as code."""
    parts = path.replace("\\", "/").rsplit("/", 2)
    name = parts[-1].lower()
    parent = parts[-2] if len(parts) > 1 else ""
    if ".dist-info" in parent or ".egg-info" in parent:
        return "skip"
    if is_manifest(path):
        return "manifest"
    if name in _SKIP_NAMES or name.endswith(_SKIP_SUFFIXES) or _SKIP_NAME_PATTERN.search(name):
        return "skip"
    # REUSE keeps one full text per license in LICENSES/<SPDX id>.txt.
    # A source file named after licenses (license_check.py) is code about licenses, not a license text.
    licensed = _LICENSE_NAME_PATTERN.search(name) and not name.endswith(_CODE_SUFFIXES)
    if licensed or (parent in ("LICENSES", "LICENCES") and name.endswith(".txt")):
        return "license"
    if name.endswith(_DOC_SUFFIXES):
        return "doc"
    return "code"


def find_declarations(path: str, text: str) -> list[Declaration]:
    """The license declarations in one file, at most MAX_PER_FILE, each expression once."""
    kind = file_kind(path)
    if kind == "skip" or not text:
        return []
    text = _encodable(text)
    if kind != "manifest":
        # Field lines (`License: X`) are a source file's; in YAML or INI such a key is data (see manifests).
        return _scan(text, kind, field_lines=path.lower().endswith(_CODE_SUFFIXES))
    fields = [_declaration(text, o, expression, "manifest") for o, expression in license_fields(path, text)]
    if path.lower().endswith(".json"):
        return fields  # JSON has no comments to hold a tag or a header
    # Most manifests are also code (setup.py, build.gradle, a Dockerfile) and may carry a tag or a header.
    named = {d.expression for d in fields}
    # Its license fields are the manifest's to read (a YAML key's indentation, say), not the header's.
    header = [d for d in _scan(text, "code", field_lines=False) if d.expression not in named]
    return (fields + header)[:MAX_PER_FILE]


def _scan(text: str, kind: FileKind, field_lines: bool = True) -> list[Declaration]:
    """A file's tags, else its field lines, texts or header grants, else its proprietary notice."""
    tags = _spdx_tags(text, fenced=kind == "doc")
    if tags:
        # A tag is the file's own precise statement: headers beside it add nothing but noise.
        return tags
    region = _unlisp(text[:LICENSE_FILE_CHARS] if kind == "license" else _header(text))
    if kind == "code" and field_lines:
        fields = _field_lines(region)
        if fields:
            return fields
    lowered = region.lower()
    if kind == "license" or any(keyword in lowered for keyword in KEYWORDS):
        found = _texts(region)
        if not found and kind != "doc":
            found = _grants(region)
        if found:
            return _with_exception(found, region)
        notice = _notice(region)
        if notice:
            return [notice]
    return [_unidentified(region)] if kind == "license" and region.strip() else []


def _unidentified(region: str) -> Declaration:
    """A license file whose text is none we know: a bare id ("MIT") is its expression, else NOASSERTION."""
    offset = len(region) - len(region.lstrip())
    body = region.strip()
    if len(body) <= 64 and "\n" not in body:
        return Declaration(body, *_position(region, offset), _evidence(region, offset), "text")
    # Its title: "European Union Public Licence v. 1.2", "The Artistic License 2.0" (a bare word that happens
    # to be an id, "Fair use of ...", is not a title).
    title = NAME_ONLY.match(body[:TITLE_CHARS])
    if title is not None and title.group("id") is None:
        named = name_to_spdx(title.group)
        if named is not None:
            return _declaration(region, offset, named, "text")
    held = title_to_spdx("\n".join(body.splitlines()[:TITLE_LINES]))
    return _declaration(region, offset, held or "NOASSERTION", "text")


def _unlisp(region: str) -> str:
    """The region with the semicolons that open Lisp, assembly and INI comment lines blanked (offsets kept):
    a sentence's words may run over lines, but not over a semicolon, which ends a clause."""
    if ";" not in region:
        return region
    blanked: str = _SEMICOLONS.sub(lambda m: m.group().replace(";", " "), region)
    return blanked


def _encodable(text: str) -> str:
    """The text with lone surrogates replaced, so it encodes to UTF-8 for re2 (offsets stay the same)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _header(text: str) -> str:
    """The top of a file, where a license header lives."""
    head = text[:HEADER_CHARS]
    cut = -1
    for _ in range(HEADER_LINES):
        cut = head.find("\n", cut + 1)
        if cut < 0:
            return head
    return head[:cut]


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of an offset."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def _evidence(text: str, offset: int) -> str:
    """The line at an offset without its comment markers, shortened."""
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset, offset + 4 * EVIDENCE_CHARS)
    line = text[start : end if end >= 0 else offset + 4 * EVIDENCE_CHARS]
    line = line.strip().lstrip("#*/;%!|<>-'(").strip()
    return line if len(line) <= EVIDENCE_CHARS else line[: EVIDENCE_CHARS - 1] + "…"


def _declaration(text: str, offset: int, expression: str, source: Source) -> Declaration:
    line, column = _position(text, offset)
    return Declaration(expression, line, column, _evidence(text, offset), source)


def _spdx_tags(text: str, fenced: bool) -> list[Declaration]:
    """SPDX-License-Identifier tags; in prose, not those inside fenced code blocks (they are examples)."""
    if "SPDX-License-Identifier" not in text and "spdx-license-identifier" not in text.lower():
        return []
    fences = [m.start() for m in itertools.islice(FENCE.finditer(text), MAX_MATCHES)] if fenced else []
    found: dict[str, Declaration] = {}
    for match in itertools.islice(SPDX_TAG.finditer(text), MAX_MATCHES):
        start = match.start(1)
        if bisect.bisect_left(fences, start) % 2:
            continue
        expression = expression_prefix(TAG_END.sub("", match.group(1)[: MAX_TAG_CHARS + 1]).strip())
        if not expression or expression in found:
            continue
        line, column = _position(text, start)
        shown = expression if len(expression) <= EVIDENCE_CHARS else expression[: EVIDENCE_CHARS - 1] + "…"
        found[expression] = Declaration(expression, line, column, shown, "spdx")
        if len(found) >= MAX_PER_FILE:
            break
    return list(found.values())


def _field_lines(region: str) -> list[Declaration]:
    """`@license X`, `License: X`, `__license__ = "X"` lines whose value names licenses."""

    group = FIELD_LINE.groupindex["value"]

    def places() -> Iterator[tuple[int, str | None]]:
        for match in FIELD_LINE.finditer(region):
            value = spdx(match.group(group))
            yield match.start(group), value if value and known(value) else None

    return _first_of_each(region, places(), "header")


def _first_of_each(
    region: str, places: Iterator[tuple[int, str | None]], source: Source
) -> list[Declaration]:
    """A declaration for the first place of each expression, at most MAX_PER_FILE of them."""
    found: dict[str, Declaration] = {}
    for offset, expression in itertools.islice(places, MAX_MATCHES):
        if expression is not None and expression not in found:
            found[expression] = _declaration(region, offset, expression, source)
            if len(found) >= MAX_PER_FILE:
                break
    return list(found.values())


def _texts(region: str) -> list[Declaration]:
    """Full license texts, by their titles or operative sentences."""
    index = TEXT.groupindex

    def places() -> Iterator[tuple[int, str]]:
        for match in TEXT.finditer(region):
            groups = match.groupdict()
            key = next(key for key, _ in TEXT_RULES if groups[key] is not None)
            yield match.start(index[key]), text_to_spdx(key, groups.get, region)

    return _first_of_each(region, places(), "text")


def _grants(region: str) -> list[Declaration]:
    """License headers: a grant followed by the license's name."""
    index = GRANT.groupindex

    def places() -> Iterator[tuple[int, str | None]]:
        for match in GRANT.finditer(region):
            groups = match.groupdict()
            lead = next((lead for lead in GRANT_LEADS if groups[lead] is not None), None)
            start = match.start(index[lead]) if lead else match.start()
            if lead in SUBJECT_LEADS and NOT_A_GRANT.search(region[region.rfind("\n", 0, start) + 1 : start]):
                continue  # "whether X is licensed under", "don't vendor code licensed under"
            yield start, name_to_spdx(groups.get)

    return _first_of_each(region, places(), "header")


def _with_exception(found: list[Declaration], region: str) -> list[Declaration]:
    """GNU licenses with the exception the region grants beside them (GCC Runtime Library, Classpath)."""
    if not any(GNU_ID.match(d.expression) for d in found):
        return found
    match = EXCEPTION.search(region)
    if match is None:
        return found
    exception = next(x for key, _, x in EXCEPTION_RULES if match.group(key) is not None)
    return [
        replace(d, expression=f"{d.expression} WITH {exception}") if GNU_ID.match(d.expression) else d
        for d in found
    ]


def _notice(region: str) -> Declaration | None:
    """A proprietary notice: a line that says so, or all rights reserved together with a restriction."""
    index = NOTICE.groupindex
    strong: int | None = None
    restriction: int | None = None
    confidential: int | None = None
    reserved = False
    for match in itertools.islice(NOTICE.finditer(region), MAX_MATCHES):
        for key in ("n1", "n2", "n3", "n8"):
            if match.group(index[key]) is not None and strong is None:
                strong = match.start(index[key])
        if match.group(index["n4"]) is not None and restriction is None:
            restriction = match.start(index["n4"])
        for key in ("n6", "n7"):
            if match.group(index[key]) is not None and confidential is None:
                confidential = match.start(index[key])
        reserved = reserved or match.group(index["n5"]) is not None
    # "All rights reserved" alone is only a copyright line (the license may be elsewhere); with a
    # restriction or "confidential" beside it, the file grants no rights at all.
    where = strong if strong is not None else restriction if reserved and restriction is not None else None
    if where is None and reserved:
        where = confidential
    return None if where is None else _declaration(region, where, "", "notice")
