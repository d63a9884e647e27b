"""Package manifests: the license a package declares for itself in its ecosystem's metadata file.

Each ecosystem's own field, as its documentation defines it: npm `license` (and the old `licenses`),
Composer `license` (a list is a choice), Cargo `[package] license`, PEP 621/639 `[project] license` (string
or table) and its Trove classifiers, Poetry `license`, setuptools `license=`, RubyGems `license(s)`,
CocoaPods `license`, Maven `<licenses><license><name>` (a list is a choice), NuGet `<license
type="expression">` and MSBuild `PackageLicenseExpression`, R `DESCRIPTION` `License:` (`|` is a choice),
Mix `licenses:`, Cabal and RPM `License:`, opam, Meson, and a YAML manifest's `license:` key (Helm's
`artifacthub.io/license`, conda's `about: license`, CITATION.cff, Ansible Galaxy). A value is turned into an
SPDX expression by `names.spdx`; a pointer to a file (`SEE LICENSE IN ...`, `license-file`) declares
nothing here (the file is judged when it is in the context). Lockfiles list dependencies' licenses,
never the file's own. Structured formats (JSON, TOML) are parsed; the others are read with RE2 patterns
over the first MANIFEST_CHARS characters, so no manifest costs more than that.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import re2

from maestro.policy.policies.licenses.names import known, spdx

MANIFEST_CHARS = 256 * 1024
MAX_FIELDS = 10

Field = tuple[int, str]
"""Where a license field's value starts, and the SPDX expression it comes to ("" for proprietary)."""

_JSON_NAMES = frozenset(
    {
        "package.json",
        "composer.json",
        "bower.json",
        "vcpkg.json",
        "jsr.json",
        "deno.json",
        "deno.jsonc",
        "elm.json",
        "dub.json",
        "haxelib.json",
        "meta.json",  # CPAN
        "metadata.json",  # Puppet Forge
    }
)
_TOML_SKIP = frozenset({"deny.toml", "about.toml", "clippy.toml", "rustfmt.toml", "taplo.toml"})
_YAML_SKIP = re2.compile(r"(?i)lock\.ya?ml$|^\.?(?:licensee|fossa|ort|licensefinder|scancode|reuse)\b")

_PY_FIELD = re2.compile(r"\blicen[cs]e(?:_expression)?\s*=\s*(?:\"([^\"\n]{1,200})\"|'([^'\n]{1,200})')")
_TROVE = re2.compile(r"(?m)License :: ((?:[^\"'\n:]+::\s*)*[^\"'\n:]+?)\s*(?:[\"',]|$)")
_CFG_FIELD = re2.compile(r"(?m)^licen[cs]e(?:_expression)?[ \t]*[=:][ \t]*(\S[^\n]{0,200}?)[ \t]*$")
_RUBY_FIELD = re2.compile(
    r"\.licen[cs]es?\s*=\s*(?:\[([^\]]{0,400})\]|\"([^\"\n]{1,200})\"|'([^'\n]{1,200})'"
    r"|\{[^}]{0,200}?(?::type\s*=>|type:)\s*[\"']([^\"'\n]{1,200})[\"'])"
)
_QUOTED = re2.compile(r"\"([^\"\n]{1,200})\"|'([^'\n]{1,200})'")
_POM_LICENSES = re2.compile(r"(?s)<licenses>(.*?)</licenses>")
_POM_NAME = re2.compile(r"<name>\s*([^<]{1,200}?)\s*</name>")
_NUGET = re2.compile(
    r"<license\s+type\s*=\s*[\"']expression[\"']\s*>\s*([^<]{1,300}?)\s*</license>"
    r"|<PackageLicenseExpression>\s*([^<]{1,300}?)\s*</PackageLicenseExpression>"
)
_DCF_FIELD = re2.compile(r"(?mi)^License:[ \t]*(\S[^\n]{0,300}(?:\n[ \t]+\S[^\n]{0,200})*)")
_MIX_FIELD = re2.compile(r"\blicenses:\s*\[([^\]]{0,400})\]")
_OPAM_FIELD = re2.compile(r"(?m)^license:\s*(?:\"([^\"\n]{1,200})\"|\[([^\]]{0,400})\])")
_MESON_FIELD = re2.compile(r"\blicense\s*:\s*(?:'([^'\n]{1,200})'|\[([^\]]{0,400})\])")
_GRADLE_FIELD = re2.compile(r"\blicenses\s*\{[^}]*?\bname(?:\.set\(|\s*=\s*|\s+)[\"']([^\"'\n]{1,200})[\"']")
_SBT_FIELD = re2.compile(r"\blicenses\s*(?::=|\+\+?=)[^\n]*?[\"']([^\"'\n]{1,200})[\"']")
_CLJ_FIELD = re2.compile(r":license\s*\{[^}]*?:name\s*\"([^\"\n]{1,200})\"")
_ERL_FIELD = re2.compile(r"\{\s*licenses\s*,\s*\[([^\]]{0,400})\]")
_CHEF_FIELD = re2.compile(r"(?m)^license\s+[\"']([^\"'\n]{1,200})[\"']")
_OCI_FIELD = re2.compile(
    r"org\.opencontainers\.image\.licenses\s*=\s*(?:\"([^\"\n]{1,300})\"|'([^'\n]{1,300})'|([^\s\"'\\]+))"
)
_YAML_FIELD = re2.compile(
    r"(?m)^(?:[ \t]{0,2})(?:artifacthub\.io/)?licen[cs]es?[ \t]*:[ \t]*([^\n#]*?)[ \t]*(?:#[^\n]*)?$"
    r"((?:\n[ \t]*-[ \t]+[^\n]+)*)"
)
_FIELDS = {
    "mix": _MIX_FIELD,
    "opam": _OPAM_FIELD,
    "meson": _MESON_FIELD,
    "gradle": _GRADLE_FIELD,
    "sbt": _SBT_FIELD,
    "clj": _CLJ_FIELD,
    "erl": _ERL_FIELD,
    "chef": _CHEF_FIELD,
    "oci": _OCI_FIELD,
}
_YAML_ITEM = re2.compile(r"(?m)^[ \t]*-[ \t]+[\"']?([^\"'\n#]+?)[\"']?[ \t]*(?:#[^\n]*)?$")


def is_manifest(path: str) -> bool:
    """Whether a file is a package manifest whose license field is its package's declaration."""
    return _format(path) is not None


def license_fields(path: str, text: str) -> list[Field]:
    """The license fields of a manifest, each as an SPDX expression, at most MAX_FIELDS."""
    kind = _format(path)
    if kind is None:
        return []
    text = text[:MANIFEST_CHARS]
    found: dict[str, Field] = {}
    for offset, values, choice in _raw(kind, text):
        expression = _combine([spdx(value) for value in values], choice)
        # Any YAML file may hold a `license:` key (a product's license key, say): only a license counts.
        if kind == "yaml" and expression and not known(expression):
            continue
        if expression is not None and expression not in found:
            found[expression] = (offset, expression)
            if len(found) >= MAX_FIELDS:
                break
    return list(found.values())


def _format(path: str) -> str | None:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    lowered = name.lower()
    if ".dist-info/" in path or ".egg-info/" in path:
        return None
    if lowered in _JSON_NAMES:
        return "json"
    if lowered.endswith(".toml"):
        return None if lowered in _TOML_SKIP else "toml"
    if lowered in ("setup.cfg",):
        return "cfg"
    if lowered in ("setup.py", "conanfile.py") or lowered.endswith((".nimble", ".rockspec")):
        return "py"
    if lowered.endswith((".gemspec", ".podspec")):
        return "ruby"
    if lowered == "pom.xml":
        return "pom"
    if lowered.endswith((".nuspec", ".csproj", ".fsproj", ".vbproj", ".props")):
        return "nuget"
    if name == "DESCRIPTION" or lowered.endswith((".cabal", ".spec")):
        return "dcf"
    if lowered == "mix.exs":
        return "mix"
    if lowered == "opam" or lowered.endswith(".opam"):
        return "opam"
    if lowered == "meson.build":
        return "meson"
    if lowered in ("build.gradle", "build.gradle.kts"):
        return "gradle"
    if lowered.endswith(".sbt"):
        return "sbt"
    if lowered == "project.clj":
        return "clj"
    if lowered.endswith(".app.src"):
        return "erl"
    if lowered == "metadata.rb":
        return "chef"
    if lowered.startswith(("dockerfile", "containerfile")) or lowered.endswith(".dockerfile"):
        return "oci"
    if lowered.endswith((".yaml", ".yml", ".cff")) and not _YAML_SKIP.search(lowered):
        return "yaml"
    return None


def _raw(kind: str, text: str) -> Iterator[tuple[int, list[str], str]]:
    """(offset, values, how several values combine) for each license field of a manifest."""
    if kind == "json":
        yield from _json(text)
    elif kind == "toml":
        yield from _toml(text)
    elif kind in ("py", "cfg"):
        pattern = _PY_FIELD if kind == "py" else _CFG_FIELD
        for match in _matches(pattern, text):
            yield match.start(), [_first(match)], "OR"
        yield from _classifiers(text)
    elif kind == "ruby":
        for match in _matches(_RUBY_FIELD, text):
            listed = match.group(1)
            values = _quoted(listed) if listed is not None else [_first(match)]
            yield match.start(), values, "OR"
    elif kind == "pom":
        for block in _matches(_POM_LICENSES, text):
            names = [m.group(1) for m in _matches(_POM_NAME, block.group(1))]
            if names:
                yield block.start(1), names, "OR"
    elif kind == "nuget":
        for match in _matches(_NUGET, text):
            yield match.start(), [_first(match)], "OR"
    elif kind == "dcf":
        for match in _matches(_DCF_FIELD, text):
            yield match.start(1), [" ".join(match.group(1).split())], "OR"
    else:
        pattern = _FIELDS.get(kind, _YAML_FIELD)
        for match in _matches(pattern, text):
            yield from _listed(match, kind)


def _listed(match: Any, kind: str) -> Iterator[tuple[int, list[str], str]]:
    """A field whose value is one string or a list of them."""
    if kind == "yaml":
        value = match.group(1).strip().strip("\"'")
        if value.startswith("["):
            yield match.start(1), [v.strip().strip("\"'") for v in value.strip("[]").split(",")], "OR"
        elif value and not value.startswith(("{", "|", ">", "&", "*")):
            yield match.start(1), [value], "OR"
        elif match.group(2):
            items = [m.group(1) for m in _matches(_YAML_ITEM, match.group(2))]
            yield match.end(1), items, "OR"
        return
    listed = match.group(1) if kind in ("mix", "erl") else match.group(match.re.groups)
    if kind in ("mix", "erl") or (listed is not None and kind in ("opam", "meson")):
        yield match.start(), _quoted(listed or ""), "AND" if kind == "meson" else "OR"
    else:
        yield match.start(), [_first(match)], "OR"


def _json(text: str) -> Iterator[tuple[int, list[str], str]]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # malformed, or nested deeper than the parser recurses
        return
    if not isinstance(data, dict):
        return
    offset = max(text.find('"licen'), 0)
    for key in ("license", "licenses", "licence"):
        values = _strings(data.get(key))
        if values:
            yield offset, values, "OR"


def _toml(text: str) -> Iterator[tuple[int, list[str], str]]:
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return
    offset = max(text.find("licen"), 0)
    tool = _table(data, "tool")
    workspace = _table(data, "workspace")
    for table in (
        _table(data, "package"),
        _table(data, "project"),
        _table(workspace, "package"),
        _table(tool, "poetry"),
    ):
        for key in ("license", "licenses", "licence", "licences", "license-expression"):
            value = table.get(key)
            if isinstance(value, dict):
                value = value.get("text")
            values = _strings(value)
            if values:
                yield offset, values, "OR"
        classifiers = _strings(table.get("classifiers"))
        trove = [c for c in classifiers if c.startswith("License ::")]
        if trove:
            yield max(text.find("License ::"), 0), trove, "OR"


def _classifiers(text: str) -> Iterator[tuple[int, list[str], str]]:
    matches = list(_matches(_TROVE, text))
    if matches:
        yield matches[0].start(), ["License :: " + m.group(1) for m in matches], "OR"


def _table(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    """A license value's strings: a string, a list of strings, or npm's {"type": ...} objects."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items[:MAX_FIELDS]:
        if isinstance(item, dict):
            item = item.get("type") or item.get("name")
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
    return out


def _matches(pattern: Any, text: str) -> Iterator[Any]:
    for count, match in enumerate(pattern.finditer(text)):
        if count >= MAX_FIELDS:
            return
        yield match


def _first(match: Any) -> str:
    return next((g for g in match.groups() if g), "")


def _quoted(text: str) -> list[str]:
    return [_first(m) for m in _matches(_QUOTED, text)]


def _combine(parts: list[str | None], choice: str) -> str | None:
    """Several values of one field: a choice (OR) or all of them (AND); pointers dropped."""
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    # Beside other values a proprietary marker is one option (or part) like any other license.
    kept = [p or "LicenseRef-Proprietary" for p in kept]
    return f" {choice} ".join(f"({p})" if " " in p else p for p in kept)
