"""docs/ARCHITECTURE.md stays true to the code: every name it gives exists where it says."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from chaos.scenarios import SCENARIOS
from maestro import topics
from maestro.settings import Settings
from proto.v1 import TaskEvent

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
TEXT = DOC.read_text()
CODE = re.findall(r"`([^`\n]+)`", TEXT)

_PATH = re.compile(r"^(?:[\w.-]+/)+[\w.-]*(?:::\w+)?$|^[\w.-]+\.(?:py|md|toml|yaml)$")
_MODULE = re.compile(r"^(?:maestro|services|proto|chaos)(?:\.[a-z_]+)+$")
_SUBJECT = re.compile(r"^maestro\.v\d+\.")


def _topic_values() -> list[Any]:
    return [value for name, value in vars(topics).items() if name.isupper()]


def _names(prefix: str) -> set[str]:
    return {v for k, v in vars(topics).items() if k.startswith(prefix) and isinstance(v, str)}


def _unique(items: list[str]) -> list[str]:
    return sorted(set(items))


PATHS = _unique([c for c in CODE if _PATH.match(c) and "<" not in c and not c.startswith("/")])
MODULES = _unique([c for c in CODE if _MODULE.match(c) and not _SUBJECT.match(c)])
SUBJECTS = _unique([c for c in CODE if _SUBJECT.match(c)])
STREAMS_OR_SETTINGS = _unique([c for c in CODE if re.fullmatch(r"MAESTRO_[A-Z0-9_]+", c)])
BUCKETS = _unique([c for c in CODE if re.fullmatch(r"maestro_[a-z_]+", c)])
DURABLES = _unique(re.findall(r"durable `([^`]+)`", TEXT))
HEADERS = _unique([c for c in CODE if re.fullmatch(r"(?:Nats|Maestro)-[A-Za-z-]+", c)])
EVENT_KINDS = _unique([c for c in CODE if re.fullmatch(r"task\.[a-z_]+", c)])
SCENARIO_NAMES = _unique(
    [name for line in re.findall(r"chaos: ([^|\n]+)", TEXT) for name in re.findall(r"`([a-z-]+)`", line)]
)


def test_the_document_names_enough_to_be_checked() -> None:
    # A change to the patterns above that matched nothing would make every check below pass vacuously.
    assert len(PATHS) > 40 and len(SUBJECTS) >= 7 and len(BUCKETS) >= 8 and len(STREAMS_OR_SETTINGS) > 10
    assert MODULES and DURABLES and HEADERS and EVENT_KINDS and SCENARIO_NAMES


@pytest.mark.parametrize("path", PATHS)
def test_every_file_and_test_it_names_exists(path: str) -> None:
    file, _, test = path.partition("::")
    assert (ROOT / file).exists(), f"docs/ARCHITECTURE.md names {file}, which does not exist"
    if test:
        assert re.search(rf"^(?:async )?def {test}\(", (ROOT / file).read_text(), re.M), (
            f"{file} has no test {test}"
        )


@pytest.mark.parametrize("module", MODULES)
def test_every_module_it_names_exists(module: str) -> None:
    base = ROOT.joinpath(*module.split("."))
    assert base.with_suffix(".py").is_file() or (base / "__init__.py").is_file(), module


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_subject_it_names_is_defined_in_topics(subject: str) -> None:
    patterns = set()
    for value in _topic_values():
        if isinstance(value, topics.Topic):
            patterns.add(value.pattern)
        elif isinstance(value, topics.Endpoint):
            patterns.add(value.subject)
    written = re.sub(r"<(\w+)>", r"{\1}", subject)
    if written.endswith(".*"):
        assert any(p.startswith(written[:-1]) for p in patterns), subject
    else:
        assert written in patterns, f"{subject} is not a subject of maestro/topics.py: {sorted(patterns)}"


@pytest.mark.parametrize("name", STREAMS_OR_SETTINGS)
def test_every_stream_it_names_is_in_topics_and_every_variable_is_a_setting(name: str) -> None:
    settings = {f"MAESTRO_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert name in _names("STREAM_") | settings, f"{name} is neither a stream in topics.py nor a setting"


@pytest.mark.parametrize("bucket", BUCKETS)
def test_every_bucket_and_store_it_names_is_in_topics(bucket: str) -> None:
    assert bucket in _names("BUCKET_") | _names("STORE_"), bucket


def test_it_names_every_stream_and_bucket_topics_defines() -> None:
    # The other way round: a stream or bucket added to the code must be described here too.
    defined = _names("STREAM_") | _names("BUCKET_") | _names("STORE_")
    assert defined - set(STREAMS_OR_SETTINGS) - set(BUCKETS) == set()


@pytest.mark.parametrize("durable", DURABLES)
def test_every_durable_it_names_is_one_the_services_use(durable: str) -> None:
    known = _names("DURABLE_") | {topics.agents_durable("planner").replace("planner", "<role>")}
    assert durable in known, durable


@pytest.mark.parametrize("header", HEADERS)
def test_every_header_it_names_is_in_topics(header: str) -> None:
    assert header in _names("HEADER_"), header


def test_every_event_kind_it_names_is_one_of_the_contract() -> None:
    tags = {member.__struct_config__.tag for member in get_args(TaskEvent)}
    assert set(EVENT_KINDS) <= tags, set(EVENT_KINDS) - tags
    assert tags <= set(EVENT_KINDS), f"events not described: {tags - set(EVENT_KINDS)}"


def test_every_chaos_scenario_it_names_exists() -> None:
    known = {s.name for s in SCENARIOS}
    assert set(SCENARIO_NAMES) <= known, set(SCENARIO_NAMES) - known


def test_its_handler_outcomes_are_the_bus_s() -> None:
    # The exceptions the outcome table names are the ones maestro/calls.py answers by.
    calls = (ROOT / "maestro" / "calls.py").read_text()
    for name in ("Retry", "Reject", "NotFound"):
        assert f"`{name}" in TEXT and f"except {name}" in calls, name


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_services_never_import_each_other_and_maestro_and_proto_import_no_service() -> None:
    # Dependencies point one way, services -> maestro -> proto: what two services share lives in maestro
    # (the policy engine the guard judges requests with and the agents their outputs: maestro/policy).
    root = Path(__file__).parent.parent
    crossing = []
    for path in sorted(
        [*root.glob("services/**/*.py"), *root.glob("maestro/**/*.py"), *root.glob("proto/**/*.py")]
    ):
        parts = path.relative_to(root).parts
        own = parts[1] if parts[0] == "services" else None
        for module in _imported_modules(path):
            names = module.split(".")
            if names[0] == "services" and len(names) > 1 and names[1] != own:
                crossing.append(f"{path.relative_to(root)} imports {module}")
    assert crossing == []
