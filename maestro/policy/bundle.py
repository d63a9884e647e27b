"""Policy bundles: YAML decoded into typed Structs, per-tenant overrides merged over the default.

A bundle is `version`, a `default` TenantPolicy and `tenants: {name: override}`. An override is merged
over the default key by key, all the way down: a mapping merges with the default's mapping, anything
else (a scalar, a list) replaces the default's value. So a tenant that only sets
`credentials: {action: redact}` keeps every other credentials setting of the default.

A bundle that does not validate raises BundleError, whose problems name the YAML line and the field.
A key written twice in one mapping is refused (YAML keeps the last silently: a bundle that reads as
`deny` would enforce the `audit` below it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

import msgspec
import yaml

from maestro.policy.policies import residency
from maestro.policy.policies.budget import BudgetPolicy
from maestro.policy.policies.commands import CommandsPolicy
from maestro.policy.policies.credentials import CredentialsPolicy
from maestro.policy.policies.licenses import LicensesPolicy
from maestro.policy.policies.residency import Peers, ResidencyPolicy
from proto.v1.ids import Tenant
from proto.v1.scheduling import Scheduling
from proto.v1.workflows import MAX_STEPS

DEFAULT_RESOURCE = "bundles/default.yaml"


class TenantPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the guard judges one tenant's requests by: one config per family, plus limits."""

    credentials: CredentialsPolicy = CredentialsPolicy()
    licenses: LicensesPolicy = LicensesPolicy()
    commands: CommandsPolicy = CommandsPolicy()
    residency: ResidencyPolicy = ResidencyPolicy()
    budget: BudgetPolicy = BudgetPolicy()
    scheduling: Scheduling = Scheduling()
    """How the tenant shares agents with the others (applied by the orchestrator's dispatcher, not judged)."""
    max_request_bytes: Annotated[int, msgspec.Meta(gt=0)] = 786_432
    """Largest encoded request the guard judges; a larger one is denied unread."""
    approval_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 24 * 3600.0
    """How long a request waits for a human's approval before it is rejected."""
    max_violations: Annotated[int, msgspec.Meta(ge=1)] = 20
    """Violations reported per family: one is enough to decide, and the list must fit in an event."""
    max_plan_subtasks: Annotated[int, msgspec.Meta(ge=0, le=MAX_STEPS)] = 20
    """Most subtasks a planner step that expands may add to its workflow (0: planners may not expand);
    subtasks do not expand again, so a plan is one level deep."""


class BundleFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A bundle as written: tenant overrides stay partial mappings until merged over the default."""

    version: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    default: TenantPolicy = TenantPolicy()
    tenants: dict[Tenant, dict[str, Any]] = {}


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: its version and hash, and each tenant's resolved policy."""

    version: str
    hash: str
    """sha256 of the canonical encoding (sorted JSON of the decoded file): comments and layout don't count."""
    default: TenantPolicy
    tenants: Mapping[str, TenantPolicy] = field(default_factory=dict)
    file: BundleFile | None = None

    def policy(self, tenant: str) -> TenantPolicy:
        """The policy a tenant's requests are judged by: its override, else the default."""
        return self.tenants.get(tenant, self.default)

    def as_seen_by(self, tenant: str) -> Bundle:
        """This bundle with the tenant's policy as everyone's (what judges something done for the tenant
        under another name, e.g. check-pr's over an agent's change)."""
        return dataclasses.replace(self, default=self.policy(tenant), tenants={})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle: the 1-based line (0 when unknown), the field's path, and what."""

    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}: {self.message}"


class BundleError(ValueError):
    """A bundle that does not parse or validate; `problems` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def merge(base: Any, override: Any) -> Any:
    """`override` merged over `base`: mappings key by key, recursively; anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    return override


def canonical(file: BundleFile) -> bytes:
    """The bytes the hash is taken of: sorted JSON of the decoded file, defaults spelled out."""
    return msgspec.json.encode(file, order="sorted")


TOO_DEEP = "nested too deeply to be a bundle (the YAML parser recurses once a level)"


@contextlib.contextmanager
def _not_too_deep() -> Iterator[None]:
    """Turn the YAML parser's RecursionError into a BundleError: a document within any size limit can nest
    past Python's recursion limit, and no bundle is more than a few levels deep."""
    try:
        yield
    except RecursionError:
        raise BundleError([Problem(0, "$", TOO_DEEP)]) from None


def parse(text: str | bytes) -> Bundle:
    """Decode and validate a bundle; raises BundleError naming the line and field of each problem."""
    with _not_too_deep():
        return _parse(text)


def _parse(text: str | bytes) -> Bundle:
    duplicated = duplicate_keys(text)
    if duplicated:
        raise BundleError(duplicated)
    try:
        file = msgspec.yaml.decode(text, type=BundleFile)
    except msgspec.ValidationError as exc:
        raise BundleError([located_problem(text, str(exc), BundleFile, ())]) from None
    except msgspec.DecodeError as exc:
        raise BundleError([_syntax_problem(text, exc)]) from None
    problems: list[Problem] = []
    base = msgspec.to_builtins(file.default)
    tenants: dict[str, TenantPolicy] = {}
    for name, override in file.tenants.items():
        try:
            tenants[name] = msgspec.convert(merge(base, override), TenantPolicy)
        except msgspec.ValidationError as exc:
            merged = merge(base, override)
            problems.append(located_problem(text, str(exc), TenantPolicy, ("tenants", name), merged))
    for scope, policy, written in _scopes(file, tenants):
        if (written or msgspec.to_builtins(file.default)).get("residency", {}).get("peers") is not None:
            problems.append(_located(text, (*scope, "residency", "peers"), _PEERS_WRITTEN))
        for path, message in residency.problems(policy.residency):
            keys = ("residency", *path.split("."))
            if written is not None and not _has_path(written, keys):
                continue  # the default's own mistake, reported once under `default`
            problems.append(_located(text, (*scope, *keys), message))
    if problems:
        raise BundleError(problems)
    peers = Peers(file.default.residency.pin(), {n: p.residency.pin() for n, p in tenants.items()})
    return Bundle(
        version=file.version,
        hash=hashlib.sha256(canonical(file)).hexdigest(),
        default=_with_peers(file.default, peers),
        tenants={name: _with_peers(policy, peers) for name, policy in tenants.items()},
        file=file,
    )


_PEERS_WRITTEN = "is filled from every tenant's own residency settings; a bundle does not write it"


def _with_peers(policy: TenantPolicy, peers: Peers) -> TenantPolicy:
    # One Peers shared by every tenant: a task touching another tenant's data is held to that tenant's pin.
    return msgspec.structs.replace(policy, residency=msgspec.structs.replace(policy.residency, peers=peers))


def duplicate_keys(text: str | bytes) -> list[Problem]:
    """A Problem for every key written twice in one mapping, at any depth (YAML keeps the last)."""
    root = _compose(text)
    found: list[Problem] = []
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())] if root is not None else []
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, (*path, str(n))) for n, child in enumerate(node.value))
        if not isinstance(node, yaml.MappingNode):
            continue
        first: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            line = int(key.start_mark.line) + 1
            if name in first:
                found.append(
                    Problem(
                        line,
                        _format((*path, name)),
                        f"duplicate key (first at line {first[name]}); YAML would keep only the last",
                    )
                )
            else:
                first[name] = line
            stack.append((value, (*path, name)))
    return sorted(found, key=lambda p: p.line)


def shipped_text() -> bytes:
    """The YAML of the bundle that ships with Maestro, as written (comments and all)."""
    return resources.files("maestro.policy").joinpath(DEFAULT_RESOURCE).read_bytes()


def load_default() -> Bundle:
    """The bundle that ships with Maestro: what a guard uses while the KV bucket holds none."""
    return parse(shipped_text())


def with_tenant(file: BundleFile, tenant: str, override_text: str | bytes) -> str:
    """The YAML of `file` with `tenant`'s override replaced by the mapping in `override_text`.

    The version becomes `<version>+<tenant>.<first 8 of the override's sha256>`. Raises BundleError.
    """
    with _not_too_deep():
        return _with_tenant(file, tenant, override_text)


def _with_tenant(file: BundleFile, tenant: str, override_text: str | bytes) -> str:
    duplicated = duplicate_keys(override_text)
    if duplicated:
        raise BundleError(duplicated)
    try:
        override = msgspec.yaml.decode(override_text, type=dict[str, Any])
    except msgspec.ValidationError as exc:
        raise BundleError([located_problem(override_text, str(exc), dict, ())]) from None
    except msgspec.DecodeError as exc:
        raise BundleError([_syntax_problem(override_text, exc)]) from None
    try:
        msgspec.convert(merge(msgspec.to_builtins(file.default), override), TenantPolicy)
    except msgspec.ValidationError as exc:
        merged = merge(msgspec.to_builtins(file.default), override)
        raise BundleError([located_problem(override_text, str(exc), TenantPolicy, (), merged)]) from None
    digest = hashlib.sha256(msgspec.json.encode(override, order="sorted")).hexdigest()[:8]
    base_version = file.version.split("+", 1)[0]
    updated = msgspec.structs.replace(
        file, version=f"{base_version}+{tenant}.{digest}", tenants={**file.tenants, tenant: override}
    )
    return msgspec.yaml.encode(updated).decode()


def _scopes(
    file: BundleFile, tenants: Mapping[str, TenantPolicy]
) -> Iterator[tuple[tuple[str, ...], TenantPolicy, dict[str, Any] | None]]:
    yield ("default",), file.default, None
    for name, policy in tenants.items():
        yield ("tenants", name), policy, file.tenants[name]


def _has_path(data: Any, keys: tuple[str, ...]) -> bool:
    for key in keys:
        name = key.split("[", 1)[0]
        if not isinstance(data, dict) or name not in data:
            return False
        data = data[name]
    return True


# -- where a problem is in the YAML -------------------------------------------------------------------
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MSGSPEC_PATH = re.compile(r" - at `([^`]*)`(?: in `(\$[^`]*)`)?$")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")


def _syntax_problem(text: str | bytes, exc: msgspec.DecodeError) -> Problem:
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 0
        return Problem(line, "$", f"invalid YAML: {err.problem or err}")
    except yaml.YAMLError as err:
        return Problem(0, "$", f"invalid YAML: {err}")
    return Problem(0, "$", f"invalid YAML: {exc}")


def located_problem(
    text: str | bytes,
    message: str,
    typ: Any,
    prefix: tuple[str, ...],
    data: Any = None,
) -> Problem:
    """A Problem for a msgspec ValidationError `message` about `data` (of type `typ`) found at `prefix`."""
    found = _MSGSPEC_PATH.search(message)
    what = message[: found.start()] if found else message
    path, bad_key = "$", False
    if found:
        # `at key in $.tenants`: a key of that mapping is wrong.
        path, bad_key = (found.group(2), True) if found.group(2) else (found.group(1), False)
    segments: list[str | int | None] = []
    for name, index in _SEGMENT.findall(path[1:]):
        segments.append(name if name else (None if index == "..." else int(index)))
    root = _compose(text)
    node, key_node, shown = _descend(root, prefix)
    if data is None and not prefix:
        data = _plain(text)
    node, key_node, more = _walk(node, key_node, segments, typ, data)
    shown = (*shown, *more)
    if bad_key and isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and not _valid_key(k.value, _walk_type(typ, segments, data)):
                return Problem(k.start_mark.line + 1, _format(shown), f"key {k.value!r}: {what}")
    unknown = _UNKNOWN_FIELD.search(what)
    if unknown and isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == unknown.group(1):
                return Problem(k.start_mark.line + 1, _format(shown), what)
    return Problem(_line(node, key_node), _format(shown), what)


def _located(text: str | bytes, keys: tuple[str, ...], message: str) -> Problem:
    segments: list[str | int] = []
    for key in keys:
        name, _, rest = key.partition("[")
        segments.append(name)
        if rest:
            segments.append(int(rest.rstrip("]")))
    node, key_node, _ = _descend(_compose(text), tuple(segments))
    return Problem(_line(node, key_node), _format(tuple(str(s) for s in segments)), message)


def _compose(text: str | bytes) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _plain(text: str | bytes) -> Any:
    try:
        return msgspec.yaml.decode(text)
    except msgspec.DecodeError:
        return None


def _child(node: yaml.Node | None, key: str | int) -> tuple[yaml.Node | None, yaml.Node | None]:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v, k
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return node.value[key], None
    return None, None


def _descend(
    node: yaml.Node | None, keys: tuple[str | int, ...]
) -> tuple[yaml.Node | None, yaml.Node | None, tuple[str, ...]]:
    key_node = None
    for key in keys:
        child, child_key = _child(node, key)
        if child is None:
            break
        node, key_node = child, child_key
    return node, key_node, tuple(str(k) for k in keys)


def _walk(
    node: yaml.Node | None,
    key_node: yaml.Node | None,
    segments: list[str | int | None],
    typ: Any,
    data: Any,
) -> tuple[yaml.Node | None, yaml.Node | None, tuple[str, ...]]:
    """Follow a msgspec path through the YAML; `None` (msgspec's `[...]`) is resolved to the bad key."""
    shown: list[str] = []
    lost = node is None
    for segment in segments:
        typ = _unwrap(typ)
        if segment is None:
            segment = _bad_key(data, _args(typ, 1))
            if segment is None:
                shown.append("...")
                lost = True
                continue
            value_type = _args(typ, 1)
        elif isinstance(segment, int):
            value_type = _args(typ, 0)
        else:
            value_type = _field_type(typ, segment)
        shown.append(str(segment))
        data = _get(data, segment)
        typ = value_type
        if not lost:
            child, child_key = _child(node, segment)
            if child is None:
                lost = True  # the value came from elsewhere (the default); point at what we reached
            else:
                node, key_node = child, child_key
    return node, key_node, tuple(shown)


def _walk_type(typ: Any, segments: list[str | int | None], data: Any) -> Any:
    for segment in segments:
        typ = _unwrap(typ)
        if segment is None or isinstance(segment, int):
            typ = _args(typ, 1 if segment is None else 0)
        else:
            typ = _field_type(typ, segment)
    return _unwrap(typ)


def _valid_key(key: str, mapping_type: Any) -> bool:
    key_type = _args(mapping_type, 0)
    if key_type is None:
        return True
    try:
        msgspec.convert(key, key_type)
    except msgspec.ValidationError:
        return False
    return True


def _bad_key(data: Any, value_type: Any) -> str | None:
    if not isinstance(data, dict) or value_type is None:
        return None
    for key, value in data.items():
        try:
            msgspec.convert(value, value_type)
        except msgspec.ValidationError:
            return str(key)
    return None


def _get(data: Any, key: str | int) -> Any:
    if isinstance(data, dict):
        return data.get(key)
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
        return data[key]
    return None


def _unwrap(typ: Any) -> Any:
    if typing.get_origin(typ) is Annotated:
        typ = typing.get_args(typ)[0]
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(typ) if a is not type(None)]
        return _unwrap(rest[0]) if len(rest) == 1 else None
    return typ


def _args(typ: Any, n: int) -> Any:
    args = typing.get_args(typ)
    return args[n] if len(args) > n else None


def _field_type(typ: Any, name: str) -> Any:
    if isinstance(typ, type) and issubclass(typ, msgspec.Struct):
        return typing.get_type_hints(typ, include_extras=True).get(name)
    return None


def _line(node: yaml.Node | None, key_node: yaml.Node | None) -> int:
    # A scalar's own line; a mapping or list is pointed at by the key that introduces it.
    if key_node is not None and not isinstance(node, yaml.ScalarNode):
        return int(key_node.start_mark.line) + 1
    return int(node.start_mark.line) + 1 if node is not None else 1


def _format(parts: tuple[str, ...]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out
