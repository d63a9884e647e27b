"""Decoding at the public edges is strict: a field the type does not know is named, at any depth."""

from __future__ import annotations

import pytest

from maestro import codec
from proto.v1 import TaskEvent, TaskRequest


def test_a_misspelt_field_is_refused_and_named() -> None:
    body = b'{"tenant": "acme", "role": "tester", "prompt": "p", "comands": ["pytest"]}'
    assert codec.decode(TaskRequest, body).commands == []  # tolerant: what services use among themselves
    with pytest.raises(codec.DecodeError, match=r"^Object contains unknown field `comands`$"):
        codec.decode_strict(TaskRequest, body)


def test_a_misspelt_field_deep_inside_is_refused_with_its_path() -> None:
    body = (
        b'{"tenant": "acme", "role": "tester", "prompt": "p", '
        b'"context": [{"path": "a"}, {"path": "b", "contnet": ""}]}'
    )
    with pytest.raises(codec.DecodeError, match=r"unknown field `contnet` - at `\$\.context\[1\]`"):
        codec.decode_strict(TaskRequest, body)


def test_known_fields_free_form_maps_and_union_tags_pass() -> None:
    body = (
        b'{"tenant": "acme", "role": "tester", "prompt": "p", "labels": {"anything": "goes"}, "context": []}'
    )
    assert codec.decode_strict(TaskRequest, body).labels == {"anything": "goes"}
    event = (
        b'{"kind": "task.started", "task_id": "t1", "tenant": "acme", '
        b'"at": "2026-01-01T00:00:00Z", "worker": "w"}'
    )
    assert codec.decode_strict(TaskEvent, event).task_id == "t1"  # type: ignore[arg-type]


def test_strict_decoding_still_refuses_what_decoding_refuses() -> None:
    with pytest.raises(codec.DecodeError, match="nested too deeply"):
        codec.decode_strict(TaskRequest, b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    with pytest.raises(codec.DecodeError, match="missing required field `tenant`"):
        codec.decode_strict(TaskRequest, b'{"role": "tester", "prompt": "p", "extra": 1}')


def test_top_level_strings_are_read_past_any_nesting_and_never_from_inside_it() -> None:
    keys = frozenset({"id", "tenant"})
    deep = b"[" * 100_000 + b'"id"' + b"]" * 100_000
    body = b'{"x": ' + deep + b', "id": "t1", "tenant": "a\\"b", "id": "second"}'
    assert codec.top_level_strings(body, keys) == {"id": "t1", "tenant": 'a"b'}
    assert codec.top_level_strings(b'{"x": {"id": "inner"}, "id": 5}', keys) == {}
    assert codec.top_level_strings(b"[1, 2]", keys) == {}
    assert codec.top_level_strings(b'{"id": "cut', keys) == {}
